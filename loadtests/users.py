"""The Locust users of the crossroads network: employers, agencies and citizens, over gRPC with mTLS.

Each user draws valid exchanges from the synthetic world (`agencies.exchanges.samples`, with a random
stream of its own, seeded from the spec), sends each as the agency the sample names (its
client certificate), paced open-loop at its share of the stage's target rate (`pacing`), and
reports every request to Locust (`events.request`, name = the kind of message) and to the
request log (for the guarantee checks). Which kinds each user sends, and how often, comes from
the scenario's mix; Locust spreads the users over the three classes by the mix's shares.

- EmployerUser: DIMONA, DmfA and DRS, filed by the employer's social secretariat, the portal or
  the batch channel.
- AgencyUser: consultations, (de-)integrations in the reference directory, mutations pushed by
  the authentic sources (the National Register, ONSS).
- CitizenUser: the portal consulting a citizen's own file (the PORTAL identity asking about the
  citizen's own NISS) under the portal's deliberation (agencies.authorizations.CITIZEN_PURPOSE),
  with the federal authentication service's assertion that this citizen authenticated, for the
  portal (crossroads.citizen): the testbed plays both the FAS (its key is in the network's
  pki/fas/) and the portal. Every user signs one for any exchange it sends for a citizen.
  A citizen without a file in the sector asked about gets FAILED_PRECONDITION (nobody to route
  to), audited: an expected answer, counted as a success.
- RawHopUser: only for the capacity baseline (`--crossroads-target proxy:host-K`): the same
  consultations handed straight to agencies of one host through the raw one-hop proxy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import ClassVar

import gevent
import numpy as np
from locust import User, constant

from agencies.exchanges import samples
from crossroads.citizen import Fas
from crossroads.domain import Kind
from crossroads.methods import DELIVER, EXCHANGE
from loadtests.client import Answer, Call, ExchangeError, deliver, exchange
from loadtests.context import RunContext, context_of
from loadtests.pacing import OpenLoop
from loadtests.record import RequestRecord
from protos import messages_pb2

__all__ = ["AgencyUser", "CitizenUser", "CrossroadsUser", "EmployerUser", "RawHopUser"]

DROPPED = "DROPPED"  # an open-loop send more than max_lag late: never sent


class CrossroadsUser(User):  # type: ignore[misc]  # locust ships no type hints
    """What every user of the network does; subclasses say which kind of user and what they expect."""

    abstract = True
    wait_time = constant(0)  # the open loop does the waiting
    user_kind: ClassVar[str] = ""
    expected_refusals: ClassVar[frozenset[str]] = frozenset()
    names: ClassVar[Mapping[str, str]] = {}  # kind -> Locust name, where it is not the kind itself
    method: ClassVar[str] = EXCHANGE

    def on_start(self) -> None:
        # Locust's pattern for other protocols: the client is set up here, after any fork; the
        # channels are the process's (one per identity), shared by its users
        self.run: RunContext = context_of(self.environment)
        serial = self.run.next_serial()
        self.rng = self.run.user_rng(self.user_kind, serial)
        spec = self.run.spec
        self.loop = OpenLoop(self.rng, poisson=spec.arrivals == "poisson", max_lag=spec.max_lag)
        weights = spec.mix.kind_weights(self.user_kind)
        self.kinds = list(weights)
        shares = np.array(list(weights.values()), dtype=float)
        self.shares = shares / shares.sum() if shares.size else shares
        self.prefix = f"lt-{self.run.run_id}-w{self.run.worker_index}-{self.user_kind[0]}{serial}-"
        self.sent = 0
        self.fas = Fas.open(self.run.options.state / "pki")  # signs for citizens: see the module doc

    def send_one(self) -> None:
        """Wait for the next due time (open loop), draw an exchange, send it, report it."""
        if not self.kinds:
            gevent.sleep(1.0)
            return
        due, dropped = self._pace()
        kind = self.kinds[int(self.rng.choice(len(self.kinds), p=self.shares))]
        sample = self.draw(kind)
        sample.envelope.message_id = f"{self.prefix}{self.sent}"
        self.fas.vouch(sample.envelope, sample.sender, time.time())  # only if it acts for a citizen
        self.sent += 1
        if dropped:
            self._report(kind, sample, due, time.monotonic(), Answer(DROPPED, "", None, (), 0, 0.0))
            return
        call, fresh = self.run.channels.call(sample.sender, self.method, connect_timeout=self.run.spec.timeout)
        if fresh:  # a first contact: the handshake is not the exchange's latency (see client.Channels.call)
            due = max(due, time.monotonic())
        answer = self.deliver(call, sample)
        self._report(kind, sample, due, time.monotonic() - answer.seconds, answer)

    # one task: which kind to send is drawn from the user's own random stream, not Locust's global one
    tasks: ClassVar[list[Callable[..., None]]] = [send_one]

    def _pace(self) -> tuple[float, bool]:
        spec = self.run.spec
        stage = spec.stage_at(self.run.elapsed()) or spec.stages[-1]
        rate = stage.rate / stage.users if stage.rate else None
        now = time.monotonic()
        send = self.loop.next(now, rate)
        if send.due > now:
            gevent.sleep(send.due - now)
        return send.due, send.dropped

    def draw(self, kind: str) -> samples.Sample:
        """A valid exchange of `kind` from the world, with this user's random stream."""
        return samples.KINDS[Kind[kind]](self.run.world, self.rng)

    def deliver(self, call: Call, sample: samples.Sample) -> Answer:
        """Send `sample` through `call` and classify the answer."""
        return exchange(call, sample.envelope.SerializeToString(), self.run.spec.timeout, self.expected_refusals)

    def _report(self, kind: str, sample: samples.Sample, due: float, sent: float, answer: Answer) -> None:
        done = sent + answer.seconds
        name = self.names.get(kind, kind)
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=(done - due) * 1000.0,  # from the due time: the wait behind slow answers counts
            response_length=answer.size,
            exception=ExchangeError(answer.error) if answer.error else None,
            context={"user": self.user_kind, "sender": sample.sender},
        )
        self.run.log.write(
            RequestRecord(
                t=self.run.wall(due),
                name=name,
                kind=kind,
                user=self.user_kind,
                ms=(done - due) * 1000.0,
                lag_ms=max(0.0, sent - due) * 1000.0,
                error=answer.error,
                message_id=sample.envelope.message_id,
                sender=sample.sender,
                audit_index=answer.audit_index,
                outcome=answer.outcome,
                deliveries=answer.deliveries,
            )
        )


class EmployerUser(CrossroadsUser):
    """Declarations: DIMONA, DmfA, DRS."""

    user_kind = "employer"


class AgencyUser(CrossroadsUser):
    """Consultations, directory (de-)integrations, mutations."""

    user_kind = "agency"


class CitizenUser(CrossroadsUser):
    """The portal consulting a citizen's own file (see the module doc)."""

    user_kind = "citizen"
    expected_refusals = frozenset({"FAILED_PRECONDITION"})  # no agency of that sector has a file on them
    names: ClassVar[Mapping[str, str]] = {"CONSULTATION": "CITIZEN_CONSULTATION"}

    def draw(self, kind: str) -> samples.Sample:
        return samples.citizen_consultation(self.run.world, self.rng)


class RawHopUser(CrossroadsUser):
    """The capacity baseline: consultations delivered to agencies of one host through the raw proxy."""

    user_kind = "agency"
    # weight 0 unless `--crossroads-target proxy:host-K` (set in the locustfile's init: Locust drops the
    # classes whose weight is 0 before that, so every class starts at 1)
    names: ClassVar[Mapping[str, str]] = {"CONSULTATION": "RAW_HOP_CONSULTATION"}
    method = DELIVER

    def on_start(self) -> None:
        super().on_start()
        self.kinds, self.shares = ["CONSULTATION"], np.ones(1)  # the baseline is one hop of a consultation

    def deliver(self, call: Call, sample: samples.Sample) -> Answer:
        agencies = self.run.proxy_agencies
        agency = agencies[int(self.rng.integers(len(agencies)))]
        forward = messages_pb2.Forward(
            agency=agency, sender=sample.sender, envelope=sample.envelope.SerializeToString()
        )
        return deliver(call, forward.SerializeToString(), self.run.spec.timeout)
