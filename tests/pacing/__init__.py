"""Pacing: rate control against gateways that throttle, and the rate shared among fanned-out runs."""
