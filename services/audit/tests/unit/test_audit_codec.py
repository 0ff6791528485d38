"""AuditRecord messages map to exactly the leaf bytes the domain encodes, and back."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.audit.v1 import audit_record_pb2
from vigil.common.v1 import identity_pb2
from vigil_audit.codec import record_fields, record_from_leaf, record_leaf
from vigil_audit.domain.leaf import leaf_bytes, record_leaf_hash
from vigil_audit.store import prepare_leaf
from vigil_kit.merkle import leaf_hash

# The domain's documented test vector (vigil_audit.domain.leaf), as the message a service would write.
VECTOR_HASH = "635b84e241f75b0feb5a3a5eb09377cd7f0df671696b7bba7e8e7cf6dc4f216d"


def vector_record() -> audit_record_pb2.AuditRecord:
    r = audit_record_pb2.AuditRecord(
        record_id="0190f5c2-7a00-7000-8000-000000000001",
        source_service="archive",
        action="archive.playback.manifest",
        purpose="PURPOSE_TRAFFIC_MANAGEMENT",
        decision=audit_record_pb2.DECISION_ALLOWED,
        grant_id="g-9",
    )
    r.time.seconds, r.time.nanos = 1740817800, 123456789  # 2025-03-01T08:30:00.123456789Z
    r.actor.CopyFrom(
        identity_pb2.Principal(
            id="u-1",
            name="李伟",
            unit="11330100MB0000001X",
            unit_kind=identity_pb2.UNIT_KIND_GOVERNMENT_DEPARTMENT,
            roles=[identity_pb2.ROLE_DEPARTMENT_ANALYST],
        )
    )
    r.resources.device_ids.append("cam-7")
    r.resources.grant_ids.append("g-9")
    r.footage.start_time.seconds = 1740816000
    r.footage.end_time.seconds = 1740816600
    r.attributes.update({"segments": "5", "bytes": "1048576"})
    return r


def test_the_documented_test_vector_as_a_message_has_the_documented_leaf_hash() -> None:
    leaf = record_leaf(vector_record())
    assert len(leaf) == 596
    assert leaf_hash(leaf).hex() == VECTOR_HASH


def test_a_message_encodes_to_the_domain_encoding_of_its_fields() -> None:
    r = vector_record()
    assert record_leaf(r) == leaf_bytes(record_fields(r))
    assert record_leaf_hash(record_fields(r)).hex() == VECTOR_HASH


# Protobuf strings are valid UTF-8, so no lone surrogates.
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
id_lists = st.lists(texts, max_size=3)
timestamps = st.tuples(st.integers(-62135596800, 253402300799), st.integers(0, 999_999_999))
role_values = st.sampled_from([v.number for v in identity_pb2.Role.DESCRIPTOR.values])
kind_values = st.sampled_from([v.number for v in identity_pb2.UnitKind.DESCRIPTOR.values])


@st.composite
def principals(draw) -> identity_pb2.Principal | None:
    if not draw(st.booleans()):
        return None
    return identity_pb2.Principal(
        id=draw(texts),
        name=draw(texts),
        unit=draw(texts),
        unit_kind=draw(kind_values),
        roles=draw(st.lists(role_values, max_size=3)),
    )


@st.composite
def records(draw) -> audit_record_pb2.AuditRecord:
    r = audit_record_pb2.AuditRecord(
        record_id=draw(texts),
        source_service=draw(texts),
        action=draw(texts),
        purpose=draw(texts),
        reason=draw(texts),
        decision=draw(st.sampled_from([0, 1, 2])),
        rule_id=draw(texts),
        grant_id=draw(texts),
        request_id=draw(texts),
    )
    if draw(st.booleans()):
        r.time.seconds, r.time.nanos = draw(timestamps)
    for name in ("actor", "approver"):
        p = draw(principals())
        if p is not None:
            getattr(r, name).CopyFrom(p)
    if draw(st.booleans()):
        r.resources.SetInParent()
        for fd in audit_record_pb2.Resources.DESCRIPTOR.fields:
            getattr(r.resources, fd.name).extend(draw(id_lists))
    if draw(st.booleans()):
        r.footage.SetInParent()
        for end in ("start_time", "end_time"):
            if draw(st.booleans()):
                ts = getattr(r.footage, end)
                ts.seconds, ts.nanos = draw(timestamps)
    r.attributes.update(draw(st.dictionaries(texts, texts, max_size=4)))
    return r


def _without_empty_messages(r: audit_record_pb2.AuditRecord) -> audit_record_pb2.AuditRecord:
    """The record as its leaf keeps it: a message present but empty is as good as absent."""
    out = audit_record_pb2.AuditRecord()
    out.CopyFrom(r)
    for name in ("actor", "approver", "resources", "footage"):
        if out.HasField(name) and not getattr(out, name).ByteSize():
            out.ClearField(name)
    return out


@settings(max_examples=300, deadline=None)
@given(records())
def test_any_message_encodes_exactly_as_the_domain_encodes_its_fields(
    r: audit_record_pb2.AuditRecord,
) -> None:
    assert record_leaf(r) == leaf_bytes(record_fields(r))


@settings(max_examples=300, deadline=None)
@given(records())
def test_a_leaf_decodes_back_to_the_record_it_encodes(r: audit_record_pb2.AuditRecord) -> None:
    leaf = record_leaf(r)
    back = record_from_leaf(leaf)
    assert back == _without_empty_messages(r)
    assert record_leaf(back) == leaf


def _us(ts) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


@settings(max_examples=300, deadline=None)
@given(records())
def test_the_query_columns_are_read_from_the_message_in_the_same_pass(
    r: audit_record_pb2.AuditRecord,
) -> None:
    prepared = prepare_leaf(r)
    footage = (None, None)
    if r.HasField("footage"):
        fw = r.footage
        footage = (
            _us(fw.start_time) if fw.HasField("start_time") else -(2**63),
            _us(fw.end_time) if fw.HasField("end_time") else 2**63 - 1,
        )
    assert prepared.row == (
        r.record_id,
        leaf_hash(record_leaf(r)),
        record_leaf(r),
        _us(r.time) if r.HasField("time") else None,
        r.source_service,
        r.actor.id or None,
        r.action,
        *footage,
    )
    kinds = {"device_ids": "device", "grant_ids": "grant", "export_ids": "export", "site_ids": "site"}
    kinds |= {"unit_ids": "unit", "hold_ids": "hold"}
    expected = {(kinds[f], i) for f in kinds for i in getattr(r.resources, f) if i}
    if r.grant_id:
        expected.add(("grant", r.grant_id))
    assert set(prepared.refs) == expected and len(prepared.refs) == len(expected)
