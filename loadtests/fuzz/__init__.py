"""Hostile input against the crossroads core's whole gRPC surface (issue 5, part 3), run against
in-process cores and hosts on 127.0.0.1.

Targets, each a class with `async run(batch) -> list[Result]`, all fed by Hypothesis:
- `ExchangeTarget`: `Exchange.handle(raw, peer)` in-process, with the real directory, audit log
  and outbox in a temp state folder, forwarding to the real `agencies.host.AgencyHost.Deliver`
  in-process (so the host also parses everything the core forwards);
- `CoreTarget`: the core over a real socket (`start_core`, mutual TLS) in front of a real agency
  host: Crossroads/Exchange, every Audit method, Health Check and Watch, server reflection, and
  methods that do not exist;
- `AgencyTarget`: the agency host's Deliver over a socket, as the core and as anyone else;
- `TlsTarget`: TLS handshakes to the core and the host with no, foreign-CA, expired and
  not-yet-valid client certificates (revoked ones need a CRL: a later task), beside a good one.
Cases come from a corpus of valid exchanges of a synthetic world (agencies.exchanges.samples; the portal's
citizen consultations carry their FAS assertion): the valid ones; random bytes; byte-level
mutations; hostile field values (invalid identifiers, unknown enum values, oversized or
non-printable text, oversized payloads and lists); deeply nested groups and messages; forged
`sender` fields; missing and unknown peers; each under a fresh message id, so that its content
is judged. Exactly-once is tested by replays of earlier messages, reused ids (an earlier
sender's message id with other content), the same id several times in one concurrent batch,
and integration lifecycles sent out of order with a resend. `run_campaign` runs them all.

Checks, per case (a failed check is a `problem`, counted in `Tally`):
- the call returns within CASE_DEADLINE_S (else a hang) and raises nothing (else a crash);
- the answer is OK or a specific status, never UNKNOWN / INTERNAL; a refusal's message says
  what was wrong (`refusal_problem`: the field, the rule or the limit);
- an exchange handled by the pipeline has exactly one new audit record, at the index its
  answer names, with the answer's outcome, the certificate's identity as sender (never the
  envelope's `sender`) and its message id; a batch's indices are exactly the new records;
- exactly once (`Register`, a model of the core's register per (sender, message id)): a
  message remembered gets its first answer again, identical, and adds no record; one not
  remembered (no key, a transient or pre-key refusal, never sent) is handled anew; refusals of
  admission control (THROTTLED, SHED) and revocation are specific and audited, never replayed;
- every forward carries the bytes as sent and the authenticated sender;
- only the core may deliver to a host; a bad client certificate is refused at the handshake,
  before any HTTP/2 byte, and leaves no audit record;
- after each target, a valid consultation is still DELIVERED and `verify_store` passes.

Modules, one concept each: `world` (FuzzWorld, prepare_world, vouched, the canary), `mutators`
(hostile values), `cases` (Case, Batch, the exchange cases, fresh ids), `checks` (Result, Tally,
what judges an answer), `register` (the exactly-once model), `channels` (reaching a target over
a socket), one module per target (`exchange`, `core`, `agency`, `tls`, each with its own cases),
`driver` (drive, FuzzConfig, run_campaign) and `atheris_harness` (the coverage-guided campaign's
harness; its child process is started by the testbed, `testbed.atheris_child`).
This package re-exports their public API. It imports Hypothesis (a dev dependency): import it
only to fuzz. `crossroads fuzz` (testbed/commands/fuzz.py) runs a campaign.
"""

from loadtests.fuzz.agency import AgencyTarget, agency_cases
from loadtests.fuzz.cases import Batch, Case, Key, batches, exchange_cases, key_of, keyed_cases, placeholder
from loadtests.fuzz.checks import CASE_DEADLINE_S, Result, Tally, refusal_problem
from loadtests.fuzz.core import CoreTarget, rpc_cases
from loadtests.fuzz.driver import DEFAULT_BATCH, DEFAULT_CASES, DEFAULT_SHARES, TARGETS, FuzzConfig, drive, run_campaign
from loadtests.fuzz.exchange import ExchangeTarget
from loadtests.fuzz.mutators import pick, weighted
from loadtests.fuzz.register import BEFORE_THE_KEY, Register
from loadtests.fuzz.tls import TlsTarget, issue_with_validity, tls_cases
from loadtests.fuzz.world import FuzzError, FuzzWorld, prepare_world, vouched

__all__ = [
    "BEFORE_THE_KEY",
    "CASE_DEADLINE_S",
    "DEFAULT_BATCH",
    "DEFAULT_CASES",
    "DEFAULT_SHARES",
    "TARGETS",
    "AgencyTarget",
    "Batch",
    "Case",
    "CoreTarget",
    "ExchangeTarget",
    "FuzzConfig",
    "FuzzError",
    "FuzzWorld",
    "Key",
    "Register",
    "Result",
    "Tally",
    "TlsTarget",
    "agency_cases",
    "batches",
    "drive",
    "exchange_cases",
    "issue_with_validity",
    "key_of",
    "keyed_cases",
    "pick",
    "placeholder",
    "prepare_world",
    "refusal_problem",
    "rpc_cases",
    "run_campaign",
    "tls_cases",
    "vouched",
    "weighted",
]
