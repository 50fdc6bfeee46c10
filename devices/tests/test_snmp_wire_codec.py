"""Our SNMPv2c message codec against pysnmp/pyasn1's (an independent implementation): what
we send decodes there to the request we meant, what an agent built with it sends decodes
here to the values it holds, and bytes that are not such a message never pass as one."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import univ
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.proto.api import v2c

from devices.links import pnm, snmp_wire
from devices.links.snmp_wire import (
    END_OF_MIB,
    Malformed,
    bulk_request,
    decode_response,
    encode_message,
    encode_oid,
    get_request,
    set_request,
)

DOCSIS_OID = "1.3.6.1.4.1.4491.2.1.27.1.2.5.1.8.3"
oids = st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=12).flatmap(
    lambda tail: st.sampled_from([(1, 3), (0, 39), (2, 999)]).map(lambda head: head + tuple(tail))
)


def theirs(data: bytes):
    message, rest = decoder.decode(data, asn1Spec=v2c.Message())
    assert rest == b""
    return message, v2c.apiMessage.get_pdu(message)


@pytest.mark.parametrize(
    "value",
    [0, -1, 127, 128, -128, -129, 255, 256, 2**31 - 1, -(2**31), 2**40, -(2**40)],
)
def test_integers_decode_there_and_take_the_fewest_octets(value: int) -> None:
    """pyasn1 reads ours back; ours is X.690's shortest form (pyasn1 itself spends an
    extra octet on -128 and -2**31, which decoders accept)."""
    ours = snmp_wire._integer(snmp_wire.INTEGER, value)
    assert int(decoder.decode(ours, asn1Spec=univ.Integer())[0]) == value
    assert len(ours) <= len(encoder.encode(univ.Integer(value)))
    content = ours[2:]
    if len(content) > 1:  # no leading octet of nine equal bits
        assert not (content[0] == 0 and content[1] < 0x80)
        assert not (content[0] == 0xFF and content[1] >= 0x80)


@given(oids)
def test_object_identifiers_are_encoded_as_pyasn1_encodes_them(arcs: tuple[int, ...]) -> None:
    dotted = ".".join(map(str, arcs))
    encoded = encode_oid(dotted)
    assert encoded == encoder.encode(univ.ObjectIdentifier(arcs))
    _, start, stop = snmp_wire._read(encoded, 0, len(encoded))
    assert snmp_wire._decode_oid(encoded[start:stop]) == arcs
    assert snmp_wire.parse_oid(dotted) == arcs


@pytest.mark.parametrize("oid", ["1", "3.1", "1.40", "1.3.-6", "1.3.x"])
def test_what_is_not_an_object_identifier_is_refused(oid: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - int() or ours, both say why
        encode_oid(oid)


def test_a_get_decodes_there_as_the_request_meant() -> None:
    data = encode_message(b"s3cret", get_request(["1.3.6.1.2.1.1.1.0", DOCSIS_OID]), 4242)
    message, pdu = theirs(data)
    assert int(v2c.apiMessage.get_version(message)) == 1
    assert bytes(v2c.apiMessage.get_community(message)) == b"s3cret"
    assert pdu.tagSet == v2c.GetRequestPDU.tagSet
    assert int(v2c.apiPDU.get_request_id(pdu)) == 4242
    assert [(str(o), v.prettyPrint()) for o, v in v2c.apiPDU.get_varbinds(pdu)] == [
        ("1.3.6.1.2.1.1.1.0", ""),
        (DOCSIS_OID, ""),
    ]


def test_a_set_carries_each_value_with_its_smi_type() -> None:
    long_text = b"x" * 300  # a two-octet length
    pairs = [
        ("1.3.6.1.2.1.1.5.0", long_text),
        ("1.3.6.1.2.1.1.6.0", "text"),
        ("1.3.6.1.2.1.1.7.0", -5),
        ("1.3.6.1.2.1.1.8.0", rfc1902.Gauge32(4_000_000_000)),
        ("1.3.6.1.2.1.1.9.0", rfc1902.Integer32(7)),
        ("1.3.6.1.2.1.1.10.0", rfc1902.IpAddress("10.1.2.3")),
        ("1.3.6.1.2.1.1.11.0", pnm.CtlStatus.READY),
    ]
    _, pdu = theirs(encode_message(b"private", set_request(pairs), 1))
    assert pdu.tagSet == v2c.SetRequestPDU.tagSet
    got = list(v2c.apiPDU.get_varbinds(pdu))
    assert [str(oid) for oid, _ in got] == [oid for oid, _ in pairs]
    values = [value for _, value in got]
    assert bytes(values[0]) == long_text
    assert bytes(values[1]) == b"text"
    assert (int(values[2]), values[2].tagSet) == (-5, univ.Integer.tagSet)
    assert (int(values[3]), values[3].tagSet) == (4_000_000_000, rfc1902.Gauge32.tagSet)
    assert (int(values[4]), values[4].tagSet) == (7, univ.Integer.tagSet)
    assert (values[5].prettyPrint(), values[5].tagSet) == ("10.1.2.3", rfc1902.IpAddress.tagSet)
    assert (int(values[6]), values[6].tagSet) == (int(pnm.CtlStatus.READY), univ.Integer.tagSet)


def test_values_that_snmp_cannot_carry_are_refused() -> None:
    with pytest.raises(TypeError):
        set_request([("1.3.6.1", True)])
    with pytest.raises(TypeError):
        set_request([("1.3.6.1", 1.5)])
    with pytest.raises(ValueError, match="negative"):
        set_request([("1.3.6.1", _NegativeGauge())])


class _NegativeGauge:
    """Looks like a Gauge32 (its tag) with a value no Gauge32 may have."""

    tagSet = rfc1902.Gauge32.tagSet

    def __int__(self) -> int:
        return -1


def test_a_getbulk_asks_for_its_repetitions() -> None:
    _, pdu = theirs(encode_message(b"public", bulk_request(DOCSIS_OID, 25), 9))
    assert pdu.tagSet == v2c.GetBulkRequestPDU.tagSet
    assert int(v2c.apiBulkPDU.get_non_repeaters(pdu)) == 0
    assert int(v2c.apiBulkPDU.get_max_repetitions(pdu)) == 25
    assert [str(oid) for oid, _ in v2c.apiBulkPDU.get_varbinds(pdu)] == [DOCSIS_OID]


def agent_response(var_binds, *, request_id: int = 77, status: int = 0, index: int = 0) -> bytes:
    """A Response message as pysnmp builds one."""
    pdu = v2c.ResponsePDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, request_id)
    v2c.apiPDU.set_error_status(pdu, status)
    v2c.apiPDU.set_error_index(pdu, index)
    v2c.apiPDU.set_varbinds(pdu, var_binds)
    message = v2c.Message()
    v2c.apiMessage.set_defaults(message)
    v2c.apiMessage.set_community(message, b"public")
    v2c.apiMessage.set_pdu(message, pdu)
    return bytes(encoder.encode(message))


def test_every_value_type_an_agent_sends_decodes_to_plain_python() -> None:
    sent = [
        (rfc1902.Integer32(-(2**31)), -(2**31)),
        (rfc1902.OctetString(b"\x00\xff" * 200), b"\x00\xff" * 200),
        (univ.ObjectIdentifier(DOCSIS_OID), DOCSIS_OID),
        (rfc1902.IpAddress("192.0.2.7"), bytes([192, 0, 2, 7])),
        (rfc1902.Counter32(2**32 - 1), 2**32 - 1),
        (rfc1902.Gauge32(2**31), 2**31),
        (rfc1902.TimeTicks(123456), 123456),
        (rfc1902.Opaque(b"opaque"), b"opaque"),
        (rfc1902.Counter64(2**64 - 1), 2**64 - 1),
        (rfc1905.noSuchObject, None),
        (rfc1905.noSuchInstance, None),
        (rfc1905.endOfMibView, END_OF_MIB),
    ]
    names = [f"1.3.6.1.2.1.99.{n}.0" for n in range(len(sent))]
    data = agent_response(
        [(v2c.ObjectIdentifier(n), v) for n, (v, _) in zip(names, sent, strict=True)]
    )
    community, response = decode_response(data)
    assert community == b"public"
    assert (response.request_id, response.error_status, response.error_index) == (77, 0, 0)
    assert [snmp_wire.oid_text(oid) for oid, _ in response.var_binds] == names
    assert [value for _, value in response.var_binds] == [want for _, want in sent]


def test_an_error_status_and_index_come_through() -> None:
    data = agent_response(
        [(v2c.ObjectIdentifier(DOCSIS_OID), rfc1902.Integer32(5))], status=17, index=1
    )
    _, response = decode_response(data)
    assert (response.error_status, response.error_index) == (17, 1)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x30",
        b"\x30\x03\x02\x01\x01",  # a sequence with the version only
        b"\x30\x84\xff\xff\xff\xff",  # a length far beyond the datagram
    ],
)
def test_what_is_not_a_v2c_response_is_malformed(data: bytes) -> None:
    with pytest.raises(Malformed):
        decode_response(data)


def test_an_snmpv1_answer_is_not_taken() -> None:
    data = bytearray(agent_response([(v2c.ObjectIdentifier(DOCSIS_OID), rfc1902.Integer32(1))]))
    assert data[2:5] == b"\x02\x01\x01"  # version 1 means SNMPv2c
    data[4] = 0  # SNMPv1
    with pytest.raises(Malformed, match="v2c"):
        decode_response(bytes(data))


def test_a_request_is_not_taken_for_an_answer() -> None:
    with pytest.raises(Malformed):
        decode_response(encode_message(b"public", get_request(["1.3.6.1.2.1.1.1.0"]), 1))


@given(st.binary(max_size=200))
def test_random_bytes_are_malformed_or_an_answer_never_a_crash(data: bytes) -> None:
    with contextlib.suppress(Malformed):
        decode_response(data)


@given(st.binary(min_size=1, max_size=60))
def test_a_cut_answer_is_malformed(tail: bytes) -> None:
    whole = agent_response([(v2c.ObjectIdentifier(DOCSIS_OID), rfc1902.OctetString(tail))])
    for cut in range(len(whole)):
        with pytest.raises(Malformed):
            decode_response(whole[:cut])
