"""Closed-loop send rate for one API endpoint: cut on 429s, climb back along a cubic (pure: the caller gives the time).

The API's limit is undocumented and its burst may be small, so the rate is found by probing, as TCP and
botocore's ``adaptive`` retry mode do: on a 429 the rate drops multiplicatively, while requests succeed it
climbs back (CUBIC: fast far below the last trouble, flat near it, probing beyond it slowly) toward a
configured ceiling. Where this differs from botocore (``botocore/retries/adaptive.py``, ``cubic.py``), and why:

- It starts slowly (TCP's slow start): at an eighth of the ceiling (10/s at least), doubling every tenth of a
  second of successes until the first 429. Started at a ceiling of ten times the limit, the requests let go
  before the first answer came back were most of a run's 429s.
- A cut starts from the rate the server *accepted* over the last second, not from the rate sent. Sending at
  ten times the limit, repeated cuts by a factor need many rounds (and many 429s) to get near the limit; one
  cut to ``beta`` times what got through lands just under it at once.
- One cut per overshoot: the requests already in flight when the rate was cut come back 429 too. A 429 whose
  request was sent before the last cut is an echo and does not count (without a send time, the 429s of
  ``cooldown_s`` after a cut are taken for echoes), and the share is judged on responses since the cut. Knowing
  echoes by their send time lets a second cut follow within milliseconds when the first was not deep enough:
  from ten times the limit a fixed quarter second of cooldown cost more 429s than all the rest of a run.
- A wall of 429s is recognised after a few responses (a binomial test against the expected share), a share
  just above it only over ``min_events``: at 10 requests/s waiting for twenty responses meant two seconds of 429s.
  Every cut halves the rate at most, since so few responses say little about what got through.
- A bucket of one refuses every other request of any rate over its limit, so what got through reads half of it:
  429s soon after a cut that held, near its rate, are a touch of the limit (a cliff), not a wall to halve for.
- A limit touched twice at the same rate is held there for a few seconds before the next probe past it (CUBIC
  probes again as soon as it is back): each probe past a bucket of one costs refused requests and a cut.
- Random 429s (a gateway's noise, not a limit) would otherwise cut the rate again and again down to its floor:
  the share of 429s a recent second usually has (the median of the last seconds) is learned as noise, and only
  a share clearly above it cuts the rate. The caller may cap it (``noise_at_most``): an endpoint's noise at the
  whole client's, since a gateway's noise shows in every endpoint's share.
- Growth is capped at twice the accepted rate once the limit has shown itself: an endpoint with little to send
  does not build up a rate it has never tried.
- The cubic is scaled by the rate at the last cut, so it takes the same ~1.5 s to climb back at 10 or 400
  requests/s (botocore's absolute constant takes seconds longer at hundreds of requests/s).
- ``Retry-After``, when the server sends one, is a floor for this endpoint only: nothing is sent before it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from statistics import median


@dataclass(frozen=True)
class RateControl:
    """The controller's tuning. ``ceiling`` is the configured limit (requests/s); the rest rarely needs changing."""

    ceiling: float
    floor: float = 0.5  # never slower than this (requests/s), so a run under heavy throttling still moves
    beta: float = 0.85  # a cut keeps this share of the accepted rate
    scale: float = 0.04  # CUBIC's C, relative to the rate at the last cut (per s³): back to it in ~1.5 s
    window_s: float = 1.0  # what "recent" means for the accepted rate and the 429 share
    min_events: int = 20  # responses the recent window keeps however old (it stretches back to hold them)
    min_hits: int = 1  # 429s needed (since the last cut) before any cut
    significance: float = 0.01  # how unlikely the 429s must be under the expected share before they cut
    # 429s a wall needs before it cuts on fewer than min_events responses: with 2, cuts on a few unlucky answers
    # of the small endpoints (the customer GET) held a run not told the limit at 75% of it (4: 94%)
    wall_hits: int = 4
    cooldown_s: float = 0.25  # after a cut, 429s of requests sent before it are echoes
    margin: float = 0.03  # a share this far above the noise (and 1.5 times it) is "over the limit"
    noise_windows: int = 10  # spells (of noise_spell_s) the noise is learned over
    # How long a spell is (at least; and at least min_events // 2 responses). Spells of a second: not told the limit,
    # under 10% random 429s, cuts on the noise held seconds 3-10 of the bench at 40-47% of it until three spells had
    # taught it. (Half a second: a gateway bucket of two seconds' worth at 10/s taught its overshoot as noise, 19%.)
    noise_spell_s: float = 0.67
    # Seconds needed before the noise counts. Few are enough, since the seconds after cuts held at half the rate teach
    # nothing; each second more is a second of random 429s read as a limit (5 costs the 10%-noise case ~15 points).
    noise_after: int = 3
    # Noise learned at this share or more: a cut needs a significant excess over it even on min_events responses.
    # At 10% random 429s, four in twenty responses is common, and cutting on that dragged a run to 17% of its rate.
    noisy: float = 0.05
    # A cut on this share of 429s or less is a touch: the rate just reached the limit. What got through since the
    # last cut then reads low (it holds the climb, and the 429s' empty slots): cut from ``touch_keep`` times the
    # rate sent instead. Cut from what got through, a bucket of one at 10/s was found at 7/s again and again.
    touch_share: float = 0.25
    touch_keep: float = 0.97
    # A cut that held (this many successes before its second 429) and 429s again within ``cliff_span`` of its rate:
    # the rate climbed just past the limit, a touch however many of the answers are 429s. A bucket of one refuses
    # every other request of any rate over it, so what got through reads half the limit, and the cut, judged a wall
    # on four 429s in eight answers, would halve the rate: attach not told its limit falls from 10/s to 4.3/s every
    # few seconds without this rule (``bench/bench_attach_jitter.py`` measures it).
    cliff_after: int = 5
    cliff_span: float = 1.1
    # ... and only when what got through is about half the rate sent (a bucket of one's sign). A bigger bucket lets
    # five successes through after any cut from its saved tokens, and what got through then reads the limit itself:
    # kept at 0.82 of the rate sent, a run not told a bucket of five at 10/s stays at 11-14/s, learns those 429s
    # as noise and goes on at 22/s with 55% refused.
    cliff_through: float = 0.6
    # Slow start (TCP's): the rate starts at this share of the ceiling and doubles every ``double_s`` until the
    # first cut. Started at a ceiling of ten times the limit, the requests let go in the first 20 ms before any
    # answer came back met a bucket of R/10 (most of a run's 429s), and a few of them queued for a connection
    # reached the gateway after the cuts, so the cuts went on to well under the limit.
    start_share: float = 0.125
    # ... but never under this (nor the ceiling, if lower): at a few requests/s nothing is in flight before the first
    # answer, and an eighth of a low ceiling doubling every double_min successes crawled (told 5/s: ~1/s for 7 s).
    start_min: float = 10.0
    double_s: float = 0.1  # at a steady stream of successes; slower when fewer come
    # ... and at least this many successes per doubling: at a few requests/s, a tenth of a second's worth is one
    # success. (8 held a run told the limit under 20/s for its first second.)
    double_min: int = 4
    start_wall: float = 0.25  # in the slow start, only a share of 429s clearly above this cuts (a wall)
    # A limit touched twice at the same rate (the two touches' rates within ``hold_span`` of each other) is held: the
    # cubic stays at the last cut's rate for ``hold_s`` before it probes past it. Probing at once after the climb
    # back (~1.5 s) touches the limit every ~2.5 s, and at a bucket of one each touch refuses every other request
    # until the cut: attach not told its limit gets 8.0-8.2 attaches/s of 10 in the jitter sweep (held 3 s: 8.6-8.8).
    # A limit that rises is found hold_s later; a share that changes (``set_ceiling``) applies at once. Why not longer:
    # each stray 429 at the plateau is a touch at the same rate and renews the hold, and held 5 s (sweep 8.6-9.0) a
    # limit that doubles under 1% stray 429s is not found within 30 s in 4 of 12 runs (held 3 s: found in 6-22 s).
    # Not with noise learned: a plateau just over a gateway whose bucket hides the overshoot draws 429s under the
    # noise's threshold: the whole client holds 109/s against 100/s with 8% refused, and attach, refused with it,
    # cuts itself to 6/s. Its seconds at the top teach no noise (_note).
    hold_s: float = 3.0
    hold_span: float = 0.05

    def __post_init__(self) -> None:
        if not (self.ceiling > 0 and 0 < self.floor <= self.ceiling and 0 < self.beta < 1):
            raise ValueError("rate control: need 0 < floor <= ceiling and 0 < beta < 1")
        if not (0 < self.start_share <= 1 and self.double_s > 0):
            raise ValueError("rate control: need 0 < start_share <= 1 and double_s > 0")


@dataclass
class RateController:
    """State of one endpoint's send rate. Call ``on_success``/``on_throttle`` with each response; read ``rate``."""

    config: RateControl
    now: float
    rate: float = 0.0  # current rate (requests/s); 0 means "slow start towards the ceiling"
    paused_until: float = 0.0  # Retry-After: send nothing before this time
    cuts: int = 0
    _w_max: float = 0.0  # the rate at the last cut: where the cubic flattens
    _epoch: float = 0.0  # time of the last cut
    _k: float = 0.0  # seconds the cubic takes to climb back to _w_max
    _limited: bool = False  # a cut happened: growth is capped by the accepted rate
    _first_429: float | None = None  # the slow start's first 429
    _ok_since_cut: int = 0  # successes since the last cut
    _hits_since_cut: int = 0  # 429s (not echoes) since the last cut
    _ok_before_second_hit: int = -1  # successes since the last cut before its second 429 (-1: none yet)
    _touched_at: float = 0.0  # the rate the last cut kept, when it was a touch (0: it was not)
    _hold: bool = False  # the last two cuts were touches at the same rate: the cubic waits hold_s at its top
    _halved: bool = False  # the last cut was held at half the rate: the rate is still over what got through
    # (rate, last trouble's rate) as the last share scaled them before the floor or ceiling held them, and the rate
    # it left: the next share scales those while the rate is still that one (``set_ceiling``)
    _scaled: tuple[float, float, float] | None = None
    _events: deque[tuple[float, bool]] = field(default_factory=deque)  # (time, throttled) since the last cut
    _bucket_start: float = 0.0
    _bucket: list[int] = field(default_factory=lambda: [0, 0])  # [responses, 429s] of the current second
    _bucket_below: bool = False  # the rate stayed at or under the last cut's all through the current second
    _bucket_held: bool = False  # ... or was held at it (``hold_s``): such a second may only lower a learned noise
    _shares: deque[float] = field(default_factory=deque)
    _recent: deque[tuple[float, bool]] = field(default_factory=deque)  # the last window_s, cuts or not

    def __post_init__(self) -> None:
        c = self.config
        self._w_max = min(self.rate, c.ceiling) if self.rate > 0 else c.ceiling
        if self.rate <= 0:
            self.rate = max(c.ceiling * c.start_share, min(c.ceiling, c.start_min))
        self.rate = min(max(self.rate, c.floor), c.ceiling)
        self._epoch = self._bucket_start = self.now
        self._shares = deque(maxlen=self.config.noise_windows)

    # -- what the caller reports ------------------------------------------------------------------
    def set_ceiling(self, ceiling: float, floor: float) -> float:
        """A new configured limit (a fanned-out shard run's share of the rate, as shard runs start and end).

        A controller that never met a limit goes to it (nothing said it is too fast). One that did scales its rate
        and its last trouble's rate with the share: what it found is its part of what the API allows, and a run
        whose share doubles (others ended) has twice the part. Capped at the ceiling, and a cut to a small share
        does not leave the run crawling back once the rate is its own. ``floor`` is the floor for this ceiling.
        """
        ratio = ceiling / self.config.ceiling
        rate, w_max = self.rate, self._w_max
        if self._scaled is not None and self._scaled[2] == self.rate:
            # The last share's floor (or the slow start's least rate, or its ceiling) held the rate: scaled from
            # there, a run given 0.5/s and then its whole rate again was at the ceiling, what it had found (or how far
            # its slow start had got) forgotten. Scaled from where that share put it instead.
            rate, w_max = self._scaled[0], self._scaled[1]
        at_ceiling = rate >= self.config.ceiling
        self.config = replace(self.config, ceiling=ceiling, floor=min(floor, ceiling))
        rate, w_max = rate * ratio, w_max * ratio
        if at_ceiling and not self._limited:
            # exactly: rate * (new / old) can land a hair under it, back "in the slow start"
            self._w_max = self.rate = rate = w_max = ceiling
        elif self._limited:
            self._w_max = min(max(w_max, self.config.floor), ceiling)
            self.rate = min(max(rate, self.config.floor), ceiling)
        else:  # still in its slow start (or done with it): as far along towards the new ceiling, as a start at least
            self._w_max = w_max = ceiling
            self.rate = min(max(rate, self.config.floor, self.config.start_min), ceiling)
        self._scaled = (rate, w_max, self.rate)
        return self.rate

    def on_success(self, now: float) -> float:
        """A request got through (any answer but 429): grow along the cubic; returns the new rate."""
        self._remember(now, throttled=False)
        self._note(now, throttled=False)
        self._ok_since_cut += 1
        c = self.config
        if self._limited:
            past_top = now - self._epoch - self._k
            if self._hold and past_top > 0:
                past_top = max(0.0, past_top - c.hold_s)
            grown = self._w_max * (1.0 + c.scale * past_top**3)
            grown = min(grown, max(2.0 * self.accepted_rate(now), self._w_max))
        else:
            # Slow start: every success raises the rate by the share that doubles it over ``double_s`` of successes
            # at this rate. Per success, not per second: the client is built (and asks for its token) well before
            # the run's first requests, and an endpoint sending less than its rate should not run ahead of it.
            grown = self.rate * 2.0 ** (1.0 / max(self.rate * c.double_s, c.double_min))
            if grown >= c.ceiling > self.rate and self._first_429 is not None:  # once, as it reaches the ceiling
                self._learn_slow_start_noise()
        self.rate = min(max(grown, self.rate, c.floor), c.ceiling)
        return self.rate

    def _learn_slow_start_noise(self) -> None:
        """The slow start reached the ceiling through 429s that were no wall: they are the gateway's noise.

        Counted as ``noise_after`` seconds of it. Unlearned, every few random 429s at the ceiling cut again until
        three seconds under the last cut had taught it: runs told the limit under 10% random 429s spent seconds
        3-10 of the bench at 26-43% of it.
        """
        n = len(self._events)
        share = sum(1 for _, throttled in self._events if throttled) / n if n else 0.0
        self._shares.extend([share] * self.config.noise_after)

    def on_throttle(self, now: float, retry_after: float | None = None, *, baseline: float = 0.0,
                    sent_at: float | None = None, noise_at_most: float = 1.0) -> float:
        """A 429: honour ``retry_after`` (seconds) as a floor, cut the rate if the 429s are over the noise.

        ``baseline`` is the 429 share a wider limit explains (the share of all endpoints together, when this
        controller is one endpoint's): only a share well above twice it is this endpoint's own limit.
        ``sent_at`` is when the refused request left: a request sent before the last cut is an echo of the
        overshoot that cut answered. Without it, 429s within ``cooldown_s`` of a cut are taken for echoes.
        ``noise_at_most`` caps the noise learned (the whole client's, when this controller is one endpoint's).
        """
        if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
            self.paused_until = max(self.paused_until, now + retry_after)
        self._remember(now, throttled=True)
        c = self.config
        if self.cuts and (sent_at < self._epoch if sent_at is not None else now - self._epoch < c.cooldown_s):
            return self.rate  # an echo of the overshoot already answered
        self._note(now, throttled=True)
        self._hits_since_cut += 1
        if self._hits_since_cut == 2:  # the second: one stray 429 (the whole client's limit) does not end the run
            self._ok_before_second_hit = self._ok_since_cut
        noise = min(self.noise(), noise_at_most)
        if not self._limited and self.rate < c.ceiling:
            if not self._wall_in_slow_start(now):
                return self.rate
        elif not self._over(max(noise * 1.5, baseline * 2) + c.margin, noise):
            return self.rate
        # Halve at most: the first 429s come within milliseconds of the start (and, with echoes known by their
        # send time, a cut can follow the last one within milliseconds), when what got through is mostly the
        # gateway's burst or a handful of requests: a rate measured over so short a time can be far too low.
        measured = self.accepted_rate(now)
        sent = min(self.rate, self.sent_rate(now))
        accepted = max(measured, self.rate / 2)
        cliff = self._at_cliff(measured, sent, noise)
        touch = self.throttled_share() <= c.touch_share or cliff
        if touch:
            accepted = max(accepted, c.touch_keep * sent)
        # A cut held at half the rate lands where less got through than that: still over the limit, so the seconds
        # until the next cut must not teach the noise (a bucket of one refuses half the requests of any rate over it:
        # cut 100 -> 50 -> 25 -> 12.5 against 10/s, those seconds taught 45% noise and the rate never cut again).
        # So does a cliff's cut, kept above what got through: after a limit halved from 20/s to 10/s, cliffs held the
        # rate at 10.3-10.8/s with 20-50% refused, those seconds taught 17% noise, and the rate then climbed to 20/s
        # with half refused and no cut.
        self._halved = measured < accepted and (accepted == self.rate / 2 or cliff)
        kept = min(self.rate, accepted)
        self._hold = (touch and noise == 0.0 and self._touched_at > 0
                      and abs(kept / self._touched_at - 1.0) <= c.hold_span)
        self._touched_at = kept if touch else 0.0
        self._w_max = max(kept, c.floor)
        self.rate = max(c.floor, c.beta * self._w_max)
        self._k = ((1 - c.beta) / c.scale) ** (1 / 3)
        self._epoch = now
        self._limited = True
        self.cuts += 1
        self._ok_since_cut, self._hits_since_cut, self._ok_before_second_hit = 0, 0, -1
        self._events.clear()
        return self.rate

    # -- what it has seen -------------------------------------------------------------------------
    def _at_cliff(self, measured: float, sent: float, noise: float) -> bool:
        """Whether these 429s are a bucket of one's cliff just past the limit (``RateControl.cliff_after``): the last
        cut held, the rate is back near it, and about half of what is ``sent`` gets through (``measured``).

        Not with ``noise`` learned: a cut then waits for a significant excess over it, and one of 18% left a rate held
        just over a bucket of one (halved from 16/s to 8/s) there with 40% refused for the rest of the run.
        """
        c = self.config
        return (self._limited and self._ok_before_second_hit >= c.cliff_after and noise < c.noisy
                and self.rate <= c.cliff_span * self._w_max
                and measured <= c.cliff_through * sent)

    def _wall_in_slow_start(self, now: float) -> bool:
        """Whether the 429s since the slow start's first are a wall: clearly more than ``start_wall`` of the answers.

        The rate doubles past a limit, and nearly every answer after the first 429 is one. Random 429s cutting the
        slow start instead held a run told the limit at 20/s for 20 s in simulation (10% noise, cut at 50/s).
        """
        c = self.config
        if self._first_429 is None:
            self._first_429 = now
        since = [throttled for at, throttled in self._events if at >= self._first_429]
        hits = sum(since)
        return hits >= c.wall_hits and _binomial_tail(hits, len(since), c.start_wall) < c.significance

    def _over(self, expected: float, noise: float) -> bool:
        """Whether the recent 429s are clearly more than a share of ``expected`` explains.

        Over ``min_events`` responses, any share above ``expected`` (when the gateway is ``noisy``: one that a
        one-sided binomial test finds unlikely under ``expected``); over fewer, ``wall_hits`` 429s or more that the
        test finds unlikely: a wall of 429s is clear after four responses. At 10 requests/s (a tight attach limit)
        waiting for twenty responses took two seconds of 429s. Without noise, any excess cuts at once: a gateway
        whose bucket holds one request punishes every request over its limit, and waiting there costs throughput.
        """
        c = self.config
        n = len(self._events)
        hits = sum(1 for _, t in self._events if t)
        if hits < c.min_hits or hits <= expected * n:
            return False
        if n >= c.min_events:
            return noise < c.noisy or _binomial_tail(hits, n, min(expected, 1.0)) < c.significance
        return hits >= c.wall_hits and _binomial_tail(hits, n, min(expected, 1.0)) < c.significance

    def throttled_share(self) -> float:
        """Share of 429s among the recent responses since the last cut."""
        if not self._events:
            return 0.0
        return sum(1 for _, t in self._events if t) / len(self._events)

    def recent_counts(self, now: float) -> tuple[int, int]:
        """Responses and 429s of the last ``window_s``, echoes and the time before a cut included: what another
        controller compares its own share with (``baseline``)."""
        recent = [throttled for at, throttled in self._recent if now - at <= self.config.window_s]
        return len(recent), sum(recent)

    def _remember(self, now: float, *, throttled: bool) -> None:
        self._recent.append((now, throttled))
        while now - self._recent[0][0] > self.config.window_s:
            self._recent.popleft()

    def accepted_rate(self, now: float) -> float:
        """Requests/s that got through recently: over the last ``window_s`` (cuts or not), or since the last cut.

        Counted from the window's first 429 when that leaves half a window or more: from then on the gateway's
        bucket was empty, so what got through is its refill rate, the limit itself. Counted over the whole
        window it also holds the time spent under the limit after the last cut, and reads low: with a bucket
        of one request (the attach limit) the rate then settled 10% under it. Not only since the last cut:
        cuts follow each other within tens of milliseconds in the first overshoot, and the handful of answers
        since the last one read as a fraction of the limit (a run not told the limit was cut from 81/s to 35/s
        against a limit of 100/s, 40/s for four seconds of the bench).
        """
        c = self.config
        # Counted from a 429 (since the last cut, or over the last window_s, cuts or not, when the last cut was less
        # than half a window ago) once half a window or min_events // 2 successes followed it. Otherwise since the
        # last cut (at least min_events responses however old, which a slow endpoint needs), never the last window_s:
        # at a few requests/s the ten successes do not come, and the last second's successes counted from its first
        # answer held the gateway's burst and the overshoot's answers (a bucket of 20 at 10/s: 20-36% 429s, where
        # since the last cut held 8-10%).
        quick = self.cuts and now - self._epoch < c.window_s / 2
        for seen in (self._recent, self._events) if quick else (self._events,):
            since_429 = next((t for t, throttled in seen if throttled), None)
            if since_429 is not None:
                ok = sum(1 for t, throttled in seen if not throttled and t >= since_429)
                if now - since_429 >= c.window_s / 2 or ok >= c.min_events // 2:
                    # Never more than the ceiling: answers handled in one tick of a coarse clock (or one pass of a
                    # stalled event loop) share a time, and ten of them after a 429 would divide by zero.
                    return min(ok / (now - since_429), c.ceiling) if now > since_429 else c.ceiling
        first = self._events[0][0] if self._events else now
        ok = sum(1 for t, throttled in self._events if not throttled and t >= first)
        return ok / max(now - first, c.window_s / 4) if ok else 0.0

    def sent_rate(self, now: float) -> float:
        """Requests/s answered over the last ``window_s``, 429s included: what was sent, which the rate (a ceiling
        an endpoint with little to send never reaches) may be far above."""
        if not self._recent:
            return 0.0
        return len(self._recent) / max(now - self._recent[0][0], self.config.window_s / 4)

    def noise(self) -> float:
        """The 429 share recent seconds usually have whatever the rate: the median of the last seconds' shares."""
        return median(self._shares) if len(self._shares) >= self.config.noise_after else 0.0

    def _note(self, now: float, *, throttled: bool) -> None:
        c = self.config
        total, hits = self._bucket
        # A bucket (a spell) closes after noise_spell_s and at least min_events // 2 responses: at a few requests a
        # second it stretches over several seconds, so a slow endpoint (or a rate cut low) still learns the noise;
        # one that closed every second with too few responses to count never learned it, and random 429s read as
        # walls cut the rate down to the floor (17% of the rate in a bench run not told the limit).
        if now - self._bucket_start >= c.noise_spell_s and total >= c.min_events // 2:
            # Only seconds spent at or under the rate of the last cut teach the noise: 429s there are not the
            # rate's fault. Seconds of an overshoot would teach the controller to ignore the limit.
            if self._bucket_below:
                self._shares.append(hits / total)
            elif self._bucket_held and self.noise() > 0:
                # A second held at the top teaches a learned noise only downwards: noise that stopped during a hold
                # was otherwise never unlearned (its spells stayed the median), and the next probe past a bucket of
                # one drew half 429s uncut, waiting for a significant excess over it: 17-45% refused for good.
                self._shares.append(min(hits / total, self.noise()))
            self._bucket, self._bucket_start = [0, 0], now
            self._bucket_below = self._bucket_held = self._limited
        # Nor the seconds held at the top (``hold_s``): held just over a gateway bucket of twenty at 10/s, which hid the
        # overshoot, its 429s taught 10% noise, and the rate then climbed to twice the limit.
        # The climb to the top still teaches: noise that began meanwhile is learned as before.
        held = self._hold and self.rate >= self._w_max
        self._bucket_held = self._bucket_held and self.rate <= self._w_max and not self._halved
        self._bucket_below = self._bucket_below and self._bucket_held and not held
        self._bucket[0] += 1
        self._bucket[1] += throttled
        self._events.append((now, throttled))
        # keep the last window_s, and at least min_events responses however old
        while len(self._events) > c.min_events and now - self._events[0][0] > c.window_s:
            self._events.popleft()


def _binomial_tail(hits: int, n: int, p: float) -> float:
    """P(X >= hits) for X ~ Binomial(n, p)."""
    if p <= 0.0:
        return 0.0 if hits > 0 else 1.0
    below = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(hits))
    return max(0.0, 1.0 - below)
