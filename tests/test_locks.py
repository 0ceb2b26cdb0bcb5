"""Advisory locks: one registry (alliance/locks.py), no two jobs on one key, and the jobs that must not refuse
each other do not (a transform run and alert delivery once shared a key and refused each other)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import psycopg
from support.build_schema import make_build_schema

from alliance import locks
from alliance.alerts import evaluate, load_alerts_file
from alliance.alerts.deliver import DELIVERY_LOCK_KEY
from alliance.config import load_config
from alliance.publish import PUBLISH_LOCK_KEY, publish
from alliance.run import RUN_LOCK_KEY, ensure_no_run_in_progress, run_lock

ROOT = Path(__file__).resolve().parents[1]
CODE_DIRS = ("alliance", "connectors", "dags", "devstack")
RULE = "rules:\n  - {id: big_commission_day, kpi: commission_owed_rc, above: 500, severity: info}\n"


def test_numbered_keys_are_unique_and_can_never_equal_a_hashtext_key():
    keys = [lock.key for lock in locks.NUMBERED]
    assert len(set(keys)) == len(keys), "two numbered advisory locks share a key"
    assert len({lock.name for lock in locks.NUMBERED}) == len(keys)
    for lock in locks.NUMBERED:
        assert 2**32 <= lock.key < 2**63, f"{lock.name}: a numbered key must lie outside hashtext's int4 range"
        assert lock.scope in {"session", "transaction"} and lock.why
    assert {RUN_LOCK_KEY, DELIVERY_LOCK_KEY, PUBLISH_LOCK_KEY} == {locks.RUN.key, locks.ALERT_DELIVERY.key,
                                                                   locks.PUBLISH.key}


def _lock_calls() -> list[tuple[Path, str]]:
    """Every advisory-lock call in the code with the name or key expression it locks on."""
    calls = []
    for directory in CODE_DIRS:
        for path in sorted((ROOT / directory).rglob("*.py")):
            text = path.read_text()
            for match in re.finditer(r"pg_(?:try_)?advisory_(?:xact_)?lock\(", text):
                calls.append((path, text[match.end():match.end() + 200]))
    return calls


def _pattern(literal: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", literal)


def _text_lock_name(path: Path, after_call: str) -> str:
    """The lock name of a `hashtext(...)` call: a literal in the SQL, or the first string argument after it."""
    inline = re.match(r"hashtext\('([^']+)'\)", after_call)
    if inline:
        return inline.group(1)
    argument = re.search(r"""\(\s*(f?"[^"]+"|[A-Z_]+)\s*,?\s*\)""", after_call)
    assert argument, f"{path}: cannot read the lock name of hashtext({after_call[:80]!r}); name it plainly"
    value = argument.group(1)
    if value[0] in "f\"":
        return value.lstrip("f").strip('"')
    constant = re.search(rf'^{value}\s*=\s*"([^"]+)"', path.read_text(), re.MULTILINE)
    assert constant, f"{path}: {value} is not a string constant of this module"
    return constant.group(1)


def test_every_advisory_lock_in_the_code_is_in_the_registry():
    registered_text = {_pattern(lock.pattern) for lock in locks.TEXT_NAMED}
    seen_text, numbered = set(), 0
    for path, after_call in _lock_calls():
        if after_call.startswith("hashtext("):
            name = _pattern(_text_lock_name(path, after_call))
            assert name in registered_text, f"{path}: text-named lock {name!r} is not listed in alliance/locks.py"
            seen_text.add(name)
        else:
            key = re.match(r'%s\)", \(([A-Z_]+),\)', after_call)
            assert key, f"{path}: advisory lock on {after_call[:60]!r}: use a key from alliance/locks.py"
            assert key.group(1).endswith("LOCK_KEY"), f"{path}: {after_call[:60]!r}"
            numbered += 1
    assert seen_text == registered_text, "a lock listed in alliance/locks.py is no longer taken anywhere"
    assert numbered >= 5  # run (3), delivery, publish, alert recording
    registry = {name for name, value in vars(locks).items() if isinstance(value, locks.AdvisoryLock)}
    for directory in CODE_DIRS:
        for path in sorted((ROOT / directory).rglob("*.py")):
            for name, value in re.findall(r"^(\w*LOCK_KEY)\s*=\s*([^#\n]+)", path.read_text(), re.MULTILINE):
                assert re.fullmatch(rf"({'|'.join(registry)})\.key\s*", value), (
                    f"{path}: {name} = {value.strip()}: take the key from alliance/locks.py")


def test_text_named_locks_of_the_demo_config_hash_to_distinct_keys(warehouse):
    config = load_config(ROOT / "config" / "demo.yml", require_secrets=False)
    partners = [p.id for p in config.partners]
    sources = partners + [n.id for n in config.referral_networks]
    names = locks.text_lock_names(partners, sources)
    with psycopg.connect(warehouse) as conn:
        keys = [conn.execute("select hashtext(%s)::bigint", (name,)).fetchone()[0] for name in names]
    assert len(set(keys)) == len(names)
    assert not {lock.key for lock in locks.NUMBERED} & set(keys)


class RecordingChannel:
    """A channel that records what it was sent and, optionally, does something while the deliverer holds its lock."""

    name = "recording"
    retries = 0

    def __init__(self, during_send=None) -> None:  # noqa: ANN001
        self.sent: list[str] = []
        self.during_send = during_send
        self.outcome: list[str] = []

    def send(self, message) -> None:  # noqa: ANN001 - an AlertMessage: every alert of this channel's run
        if self.during_send is not None:
            self.outcome.append(self.during_send())
        self.sent.extend(alert.alert_id for alert in message.alerts)


def _published_with_an_alert(url: str, tmp_path: Path):  # noqa: ANN202
    path = tmp_path / "alerts.yml"
    path.write_text(RULE)
    spec = load_alerts_file(path)
    make_build_schema(url, rules=spec.rules)
    publish(url, run_id="r1")
    return spec


def test_alerts_deliver_while_a_transform_run_holds_the_run_lock(warehouse, tmp_path):
    spec = _published_with_an_alert(warehouse, tmp_path)
    channel = RecordingChannel()
    with run_lock(warehouse, "run-holding"):  # another transform run is between prepare and publish
        outcome = evaluate(warehouse, spec, "r1", channels=[channel])
    assert channel.sent == ["big_commission_day:northwind:2026-10-01:1"]
    assert [(d.channel, d.status) for d in outcome.deliveries] == [("recording", "sent")]


def test_a_transform_run_starts_while_alerts_are_being_delivered(warehouse, tmp_path):
    spec = _published_with_an_alert(warehouse, tmp_path)
    delivering = threading.Event()

    def start_a_run() -> str:
        with psycopg.connect(warehouse, autocommit=True) as conn:  # the deliverer holds its lock right now
            held = conn.execute("select count(*) from pg_locks where locktype = 'advisory' and granted "
                                "and classid = %s and objid = %s",
                                (DELIVERY_LOCK_KEY >> 32, DELIVERY_LOCK_KEY & 0xFFFFFFFF)).fetchone()[0]
        delivering.set()
        ensure_no_run_in_progress(warehouse, "run-split")  # the Airflow path: raises RunRefused if refused
        with run_lock(warehouse, "run-in-process"):
            return f"delivery lock held: {held}; run lock taken"

    channel = RecordingChannel(during_send=start_a_run)
    outcome = evaluate(warehouse, spec, "r1", channels=[channel])
    assert delivering.is_set()
    assert channel.outcome == ["delivery lock held: 1; run lock taken"]
    assert [(d.channel, d.status) for d in outcome.deliveries] == [("recording", "sent")]
