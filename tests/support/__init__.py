"""Helpers shared by the test folders: staging scenarios, child runs, fake clocks."""
