"""The certificate decisions, with real certificates and a clock passed by hand.

Each test builds the Secret's files with the product's own functions at a
chosen ``now`` and checks what :func:`decide` and :func:`render` make of them
later: no Kubernetes involved. The property-based test walks a whole life
(serving renewals, CA rotations, a webhook configuration that sometimes fails
to update) and checks the promise of the module: an admission request never
meets a certificate the configuration does not trust.
"""

from __future__ import annotations

import base64
import datetime as dt
import ssl
from collections.abc import Mapping
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from graceful.certificates.rotation import (
    CA_CRT,
    CA_KEY,
    TLS_CRT,
    TLS_KEY,
    CertificatePolicy,
    Decision,
    LifetimeError,
    Stored,
    cert_hosts,
    decide,
    decode_data,
    encode_data,
    fingerprint,
    inspect,
    issued_by,
    key_matches,
    load_certificates,
    load_key,
    new_ca,
    new_serving,
    parse_lifetime,
    render,
    service_hosts,
    trusted_by,
    with_ca_bundle,
)
from graceful.webhook.config import webhook_configuration
from graceful.webhook.tls import server_context

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
HOSTS = service_hosts("graceful-webhook", "graceful-system", ["127.0.0.1"])
#: The keeper's pause before it looks again while a certificate waits.
SETTLE = dt.timedelta(minutes=1)
POLICY = CertificatePolicy(hosts=HOSTS, serving_lifetime=dt.timedelta(hours=3),
                           ca_lifetime=dt.timedelta(hours=9))

Files = dict[str, bytes]


def fresh(now: dt.datetime = T0, policy: CertificatePolicy = POLICY) -> Files:
    return render(None, decide(None, policy, now, trusted=None), policy, now)


def look(files: Mapping[str, bytes], now: dt.datetime) -> Stored:
    return inspect(files, HOSTS, now)


def step(files: Files, now: dt.datetime, trusted: frozenset[str] | None = None,
         policy: CertificatePolicy = POLICY) -> tuple[Decision, Files]:
    """One pass: the decision, and the files after it."""
    stored = look(files, now)
    decision = decide(stored, policy, now, trusted=trusted)
    return decision, render(stored, decision, policy, now) if decision.changed else files


def serving(files: Mapping[str, bytes]) -> x509.Certificate:
    return load_certificates(files[TLS_CRT])[0]


def bundle(files: Mapping[str, bytes]) -> list[x509.Certificate]:
    return load_certificates(files[CA_CRT])


def prints(files: Mapping[str, bytes]) -> frozenset[str]:
    return frozenset(fingerprint(ca) for ca in bundle(files))


# --- names and lifetimes --------------------------------------------------------------------


def test_the_service_names_come_first_then_the_extra_ones_without_duplicates() -> None:
    assert service_hosts("svc", "ns", ["127.0.0.1", "svc.ns", " "]) == (
        "svc", "svc.ns", "svc.ns.svc", "svc.ns.svc.cluster.local", "127.0.0.1")


@pytest.mark.parametrize(("text", "seconds"), [
    ("90d", 90 * 86400), ("8760h", 8760 * 3600), ("1h30m", 5400), ("45s", 45), ("600", 600),
    ("1d12h", 36 * 3600),
])
def test_lifetimes(text: str, seconds: int) -> None:
    assert parse_lifetime(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0", "0s", "-5s", "1.5h", "5 days", "1y", "٣d", "90D"])
def test_unreadable_lifetimes_are_refused(text: str) -> None:
    with pytest.raises(LifetimeError):
        parse_lifetime(text)


def test_a_ca_must_outlive_three_serving_certificates() -> None:
    """Else the signing CA could cut a serving certificate short and renewals would loop."""
    with pytest.raises(ValueError, match="3 times"):
        CertificatePolicy(hosts=HOSTS, serving_lifetime=dt.timedelta(days=90),
                          ca_lifetime=dt.timedelta(days=200))
    with pytest.raises(ValueError, match="at least one name"):
        CertificatePolicy(hosts=())


# --- a fresh Secret ----------------------------------------------------------------------


def test_no_secret_gives_a_ca_and_a_serving_certificate_for_every_name() -> None:
    decision = decide(None, POLICY, T0, trusted=None)
    assert decision.replace and decision.changed
    assert decision.reasons == ("no Secret yet",)
    files = fresh()
    assert set(files) == {TLS_CRT, TLS_KEY, CA_CRT, CA_KEY}
    (ca,) = bundle(files)
    cert = serving(files)
    assert issued_by(cert, ca)
    assert cert_hosts(cert) == {"graceful-webhook", "graceful-webhook.graceful-system",
                                "graceful-webhook.graceful-system.svc",
                                "graceful-webhook.graceful-system.svc.cluster.local",
                                "127.0.0.1"}
    cert_key = load_key(files[TLS_KEY])
    ca_key = load_key(files[CA_KEY])
    assert cert_key is not None and key_matches(cert, cert_key)
    assert ca_key is not None and key_matches(ca, ca_key)
    assert cert.not_valid_after_utc == T0 + POLICY.serving_lifetime
    assert ca.not_valid_after_utc == T0 + POLICY.ca_lifetime
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    stored = look(files, T0)
    assert stored.usable and not stored.serving_problems


def test_the_webhook_serves_the_pair_as_mounted(tmp_path: Path) -> None:
    """``graceful webhook --cert tls.crt --key tls.key`` loads what the operator writes."""
    files = fresh(dt.datetime.now(dt.UTC))
    for name in (TLS_CRT, TLS_KEY):
        (tmp_path / name).write_bytes(files[name])
    context = server_context(tmp_path / TLS_CRT, tmp_path / TLS_KEY)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_the_secret_round_trips_through_base64_data() -> None:
    files = fresh()
    assert decode_data(encode_data(files)) == files
    assert decode_data({"tls.crt": "not base64!", "x": 7}) == {}


def test_a_valid_secret_is_left_alone_after_a_restart() -> None:
    """The decision reads only the Secret: a new process decides the same."""
    files = fresh()
    for later in (dt.timedelta(0), dt.timedelta(minutes=1), dt.timedelta(hours=1.9)):
        decision, after = step(files, T0 + later, prints(files))
        assert not decision.changed, decision.reasons
        assert after is files
    decision = decide(look(files, T0), POLICY, T0, trusted=prints(files))
    assert decision.next_check == T0 + dt.timedelta(hours=2)  # a third of 3 h left


# --- renewals ----------------------------------------------------------------------------


def test_the_serving_certificate_is_renewed_with_a_third_of_its_life_left() -> None:
    files = fresh()
    now = T0 + dt.timedelta(hours=2)
    decision, after = step(files, now, prints(files))
    assert decision.reissue and not decision.new_ca and not decision.replace
    assert decision.reasons == (f"{TLS_CRT} expires at {T0 + POLICY.serving_lifetime}",)
    assert after[CA_CRT] == files[CA_CRT] and after[CA_KEY] == files[CA_KEY]
    assert serving(after).not_valid_after_utc == now + POLICY.serving_lifetime
    assert after[TLS_KEY] != files[TLS_KEY]
    assert not step(after, now, prints(after))[0].changed


def test_the_ca_rotates_with_an_overlap_and_the_certificate_waits_for_the_configuration() -> None:
    files = fresh()
    old_ca = bundle(files)[0]
    # keep the serving certificate young, so only the CA is due at 6 h
    files = step(files, T0 + dt.timedelta(hours=2), prints(files))[1]
    files = step(files, T0 + dt.timedelta(hours=4, minutes=30), prints(files))[1]
    config_trusts = prints(files)

    now = T0 + dt.timedelta(hours=6)
    decision, files = step(files, now, config_trusts)
    assert decision.new_ca and not decision.reissue and not decision.replace
    assert "a new CA joins the bundle" in decision.reasons[0]
    old, new = bundle(files)
    assert old == old_ca and new != old_ca
    new_key = load_key(files[CA_KEY])
    assert new_key is not None and key_matches(new, new_key)
    assert issued_by(serving(files), old_ca)  # still the old one: it is what Pods serve

    # the configuration has not taken the new CA yet: the old certificate stays
    decision, same = step(files, now, config_trusts)
    assert decision.waiting and not decision.changed
    assert "waiting until the webhook configuration trusts the new CA" in decision.reasons[0]
    assert same is files

    # it has: the certificate moves to the new CA; the old CA stays trusted
    config_trusts = prints(files)
    decision, files = step(files, now, config_trusts)
    assert decision.reissue and decision.reasons == (f"{TLS_CRT} was signed by a previous CA",)
    assert issued_by(serving(files), new)
    assert bundle(files) == [old_ca, new]

    # the old CA leaves the bundle when it expires (after the next serving renewal here)
    assert decide(look(files, now), POLICY, now, trusted=prints(files)).next_check == (
        now + dt.timedelta(hours=2))
    files = step(files, now + dt.timedelta(hours=2), prints(files))[1]
    assert decide(look(files, now), POLICY, now, trusted=prints(files)).next_check == (
        old_ca.not_valid_after_utc)
    decision, files = step(files, old_ca.not_valid_after_utc, prints(files))
    assert decision.drop == (fingerprint(old_ca),) and not decision.reissue
    assert bundle(files) == [new]


def test_without_a_configuration_nothing_waits() -> None:
    files = fresh()
    files = step(files, T0 + dt.timedelta(hours=4), None)[1]
    decision, files = step(files, T0 + dt.timedelta(hours=6, minutes=1), None)
    assert decision.new_ca and decision.reissue and not decision.waiting
    assert issued_by(serving(files), bundle(files)[1])


def test_a_broken_serving_certificate_is_replaced_at_once_even_while_waiting() -> None:
    """Nothing to lose: what the Pods serve does not work anyway."""
    files = fresh()
    decision, files = step(files, T0 + dt.timedelta(hours=6), prints(files))
    assert decision.new_ca
    files = {**files, TLS_KEY: fresh()[TLS_KEY]}
    decision, files = step(files, T0 + dt.timedelta(hours=6), frozenset())
    assert decision.reissue and not decision.waiting
    assert decision.reasons == (f"{TLS_KEY} does not match {TLS_CRT}",)


# --- a Secret somebody else wrote ----------------------------------------------------------


def test_garbage_is_replaced_and_the_reasons_say_why() -> None:
    decision = decide(look({TLS_CRT: b"hello", CA_CRT: b"x"}, T0), POLICY, T0, trusted=None)
    assert decision.replace
    assert decision.reasons == (f"{CA_CRT}: no CA certificate", f"no {CA_KEY}")
    assert decide(look({}, T0), POLICY, T0, trusted=None).reasons == (
        f"no {CA_CRT}", f"no {CA_KEY}")


def test_a_ca_key_that_matches_no_ca_is_replaced() -> None:
    files = {**fresh(), CA_KEY: fresh()[CA_KEY]}
    decision, after = step(files, T0)
    assert decision.replace
    assert decision.reasons == (f"{CA_KEY} matches no CA in {CA_CRT}",)
    assert bundle(after) != bundle(files) and look(after, T0).usable


def test_an_expired_ca_is_replaced() -> None:
    files = fresh()
    late = T0 + POLICY.ca_lifetime
    decision = decide(look(files, late), POLICY, late, trusted=None)
    assert decision.replace and "expired" in decision.reasons[0]


def test_a_certificate_for_other_names_is_reissued_by_the_same_ca() -> None:
    other = CertificatePolicy(hosts=("elsewhere",), serving_lifetime=POLICY.serving_lifetime,
                              ca_lifetime=POLICY.ca_lifetime)
    files = fresh(policy=other)
    decision, after = step(files, T0, prints(files))
    assert decision.reissue and not decision.replace
    assert decision.reasons[0].startswith(f"{TLS_CRT} does not cover 127.0.0.1, graceful-webhook")
    assert after[CA_CRT] == files[CA_CRT]
    assert cert_hosts(serving(after)) >= set(HOSTS)


def test_a_certificate_from_a_foreign_ca_is_reissued() -> None:
    files = fresh()
    ca, key = new_ca(T0, POLICY.ca_lifetime)
    cert, cert_key = new_serving(ca, key, HOSTS, T0, POLICY.serving_lifetime)
    decision, after = step({**files, TLS_CRT: cert, TLS_KEY: cert_key}, T0, prints(files))
    assert decision.reissue
    assert f"{TLS_CRT} was not signed by a CA in {CA_CRT}" in decision.reasons
    assert issued_by(serving(after), bundle(files)[0])


def test_a_leaf_in_the_bundle_is_left_out() -> None:
    files = fresh()
    files = {**files, CA_CRT: files[CA_CRT] + files[TLS_CRT]}
    decision, after = step(files, T0, None)
    assert decision.tidy and decision.changed and not decision.reissue
    assert "not a CA" in decision.reasons[0]
    assert len(bundle(after)) == 1 and after[TLS_CRT] == files[TLS_CRT]


def test_an_rsa_ca_from_elsewhere_is_kept_and_signs() -> None:
    """A CA the operator did not make (RSA, say) is fine as long as the pair is consistent."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "their-ca")])
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
          .public_key(key.public_key()).serial_number(1)
          .not_valid_before(T0 - dt.timedelta(days=1)).not_valid_after(T0 + dt.timedelta(days=9))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(key, hashes.SHA256()))
    files = {CA_CRT: ca.public_bytes(serialization.Encoding.PEM),
             CA_KEY: key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())}
    decision, after = step(files, T0, None)
    assert decision.reissue and not decision.replace
    assert issued_by(serving(after), ca) and after[CA_CRT] == files[CA_CRT]


# --- the webhook configuration ------------------------------------------------------------


def configuration(*bundles: bytes) -> dict[str, object]:
    config = webhook_configuration(ca_bundle=b"placeholder", url="https://127.0.0.1:1/mutate")
    hooks = []
    for index, pem in enumerate(bundles):
        hook = dict(config["webhooks"][0])
        hook["name"] = f"h{index}.graceful.io"
        hook["clientConfig"] = {**hook["clientConfig"],
                                "caBundle": base64.b64encode(pem).decode()}
        hooks.append(hook)
    config["webhooks"] = hooks
    return config


def test_the_bundle_is_set_on_every_webhook_and_only_when_it_differs() -> None:
    files = fresh()
    config = configuration(b"placeholder", files[CA_CRT])
    updated = with_ca_bundle(config, files[CA_CRT])
    assert updated is not None
    assert [base64.b64decode(h["clientConfig"]["caBundle"]) for h in updated["webhooks"]] == [
        files[CA_CRT], files[CA_CRT]]
    assert updated["webhooks"][0]["clientConfig"]["url"] == "https://127.0.0.1:1/mutate"
    assert with_ca_bundle(updated, files[CA_CRT]) is None


def test_a_ca_is_trusted_only_when_every_webhook_carries_it() -> None:
    one, two = fresh(), fresh()
    both = one[CA_CRT] + two[CA_CRT]
    assert trusted_by(configuration(both, one[CA_CRT])) == prints(one)
    assert trusted_by(configuration(both, both)) == prints(one) | prints(two)
    assert trusted_by(configuration(b"placeholder")) == frozenset()
    assert trusted_by(None) is None
    assert trusted_by({"webhooks": []}) is None


# --- a whole life ------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ca_hours=st.integers(min_value=9, max_value=15),
       steps=st.lists(st.tuples(st.integers(min_value=1, max_value=45), st.booleans()),
                      min_size=20, max_size=40))
def test_no_admission_request_meets_an_untrusted_certificate(
        ca_hours: int, steps: list[tuple[int, bool]]) -> None:
    """Over any sequence of passes (when due or sooner, at most 45 min apart, a minute
    apart while a certificate waits, as the keeper's loop does; a 3 h certificate), where
    the configuration update sometimes fails:

    - after every pass the Secret is consistent and its certificate valid;
    - a certificate that still worked is replaced only by one the configuration
      already trusts (a Pod switching to it meets no failure); one expires only
      if the configuration could not be updated for an hour;
    - the bundle written still trusts the certificate it replaces (a Pod still
      serving the old one meets no failure either);
    - a second pass at the same moment, the configuration unchanged, changes nothing.
    """
    policy = CertificatePolicy(hosts=HOSTS, serving_lifetime=dt.timedelta(hours=3),
                               ca_lifetime=dt.timedelta(hours=ca_hours))
    now = T0
    files = fresh(now, policy)
    config = prints(files)
    rotations = failed_in_a_row = 0
    due: dt.datetime | None = None
    waiting = False
    for minutes, config_update_fails in steps:
        # as the keeper's loop: at the latest when due, soon again while waiting
        delay = dt.timedelta(minutes=minutes)
        if waiting:
            delay = min(delay, SETTLE)
        elif due is not None:
            delay = max(min(delay, due - now), dt.timedelta(seconds=1))
        now += delay
        before = serving(files)
        decision, after = step(files, now, config, policy)
        stored = inspect(after, HOSTS, now)
        assert stored.usable and not stored.serving_problems, (decision, stored)
        cert = serving(after)
        if cert != before:
            rotations += 1
            if now < before.not_valid_after_utc:  # it still worked: keep it working
                assert any(issued_by(cert, ca) and fingerprint(ca) in config
                           for ca in bundle(after)), decision
                assert any(issued_by(before, ca) for ca in bundle(after))
            else:  # only when the configuration could not be updated for most of an hour
                event("the certificate expired while waiting for the configuration")
                assert failed_in_a_row * SETTLE >= dt.timedelta(minutes=50)
        if decision.new_ca:
            event("a new CA joined the bundle")
        if decision.waiting:
            event("a certificate waited for the configuration")
        again, _ = step(after, now, config, policy)
        assert not again.changed, again
        due, waiting = again.next_check, again.waiting
        files = after
        if config_update_fails:
            failed_in_a_row += 1
        else:
            config = prints(files)
            failed_in_a_row = 0
    if now - T0 >= policy.serving_lifetime:
        assert rotations >= 1
