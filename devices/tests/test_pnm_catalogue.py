"""The PNM catalogue's table (``devices.links.pnm``) against the MIBs, typed out by hand.

Every OID below is written in full from DOCS-PNM-MIB-2024-07-05 (docsPnmMIB =
1.3.6.1.4.1.4491.2.1.27) and DOCS-IF3-MIB-2025-02-20 (docsIf3Mib = 1.3.6.1.4.1.4491.2.1.20;
docsIf3CmSpectrumAnalysisCtrlCmd = docsIf3MibObjects 34), cross-checked with
shared/reference/docsis-pnm.md §2.2, and NOT computed from the spec under test. No network.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pysnmp.proto.rfc1902 import Gauge32, Integer32

from devices.links import pnm
from devices.links.pnm import InvalidParameters, PnmTest, Scope

GAUGE, INTEGER = "Gauge32", "Integer32"  # how a parameter goes out on the wire
FEC_SUM_TYPES = {"10min": 2, "24h": 3}  # docsPnmCmDsOfdmFecSumType interval10min / interval24hr
WINDOWS = {  # SpectrumAnalysisWindowFunction (DOCS-IF3-MIB), other(0) left out
    "hann": 1,
    "blackman_harris": 2,
    "rectangular": 3,
    "hamming": 4,
    "flat_top": 5,
    "gaussian": 6,
    "chebyshev": 7,
}


@dataclass(frozen=True)
class Column:
    """One read-write parameter column at the row's index."""

    oid: str
    smi: str
    default: int | str
    minimum: int | None = None  # None for a named-number column
    maximum: int | None = None
    choices: dict[str, int] | None = None


@dataclass(frozen=True)
class Row:
    """A test's objects at one index, as the MIB names them."""

    scope: Scope
    if_index: int
    enable: str
    meas_status: str
    file_names: tuple[str, ...]  # in the order of test.files
    parameters: dict[str, Column]
    armed: dict[str, int]  # OID -> value set with the parameters


# The ifIndex of each row is arbitrary (3: an OFDM channel, 2: the MAC layer, 80: an OFDMA
# channel); the spectrum analyser's CtrlCmd objects are scalars (.0).
MIB: dict[PnmTest, Row] = {
    # docsPnmCmDsOfdmRxMerEntry: FileEnable .1, MeasStatus .7, FileName .8
    PnmTest.RXMER: Row(
        Scope.DS_OFDM,
        3,
        "1.3.6.1.4.1.4491.2.1.27.1.2.5.1.1.3",
        "1.3.6.1.4.1.4491.2.1.27.1.2.5.1.7.3",
        ("1.3.6.1.4.1.4491.2.1.27.1.2.5.1.8.3",),
        {},
        {},
    ),
    # docsPnmCmOfdmChanEstCoefEntry: TrigEnable .1, MeasStatus .7, FileName .8
    PnmTest.CHANNEL_ESTIMATION: Row(
        Scope.DS_OFDM,
        3,
        "1.3.6.1.4.1.4491.2.1.27.1.2.3.1.1.3",
        "1.3.6.1.4.1.4491.2.1.27.1.2.3.1.7.3",
        ("1.3.6.1.4.1.4491.2.1.27.1.2.3.1.8.3",),
        {},
        {},
    ),
    # docsPnmCmDsConstDispMeasEntry: TrigEnable .1, ModOrderOffset .2 (Unsigned32 0..10,
    # DEFVAL 0), NumSampleSymb .3 (Unsigned32 0..65535, DEFVAL 8192; 0 samples refused by
    # us), MeasStatus .5, FileName .6
    PnmTest.CONSTELLATION: Row(
        Scope.DS_OFDM,
        3,
        "1.3.6.1.4.1.4491.2.1.27.1.2.4.1.1.3",
        "1.3.6.1.4.1.4491.2.1.27.1.2.4.1.5.3",
        ("1.3.6.1.4.1.4491.2.1.27.1.2.4.1.6.3",),
        {
            "modulation_order_offset": Column(
                "1.3.6.1.4.1.4491.2.1.27.1.2.4.1.2.3", GAUGE, 0, 0, 10
            ),
            "number_sample_symbols": Column(
                "1.3.6.1.4.1.4491.2.1.27.1.2.4.1.3.3", GAUGE, 8192, 1, 65535
            ),
        },
        {},
    ),
    # docsPnmCmDsOfdmFecEntry: SumType .1 (DEFVAL interval10min), FileEnable .2,
    # MeasStatus .3, FileName .4
    PnmTest.FEC_SUMMARY: Row(
        Scope.DS_OFDM,
        3,
        "1.3.6.1.4.1.4491.2.1.27.1.2.7.1.2.3",
        "1.3.6.1.4.1.4491.2.1.27.1.2.7.1.3.3",
        ("1.3.6.1.4.1.4491.2.1.27.1.2.7.1.4.3",),
        {
            "summary_type": Column(
                "1.3.6.1.4.1.4491.2.1.27.1.2.7.1.1.3", INTEGER, "10min", choices=FEC_SUM_TYPES
            ),
        },
        {},
    ),
    # docsPnmCmDsHistEntry on the docsCableMaclayer ifIndex: Enable .1, TimeOut .2
    # (Unsigned32 0..65535, DEFVAL 1800; 0 = forever, refused by us, default 10 as PyPNM),
    # MeasStatus .3, FileName .4
    PnmTest.HISTOGRAM: Row(
        Scope.MAC_LAYER,
        2,
        "1.3.6.1.4.1.4491.2.1.27.1.2.9.1.1.2",
        "1.3.6.1.4.1.4491.2.1.27.1.2.9.1.3.2",
        ("1.3.6.1.4.1.4491.2.1.27.1.2.9.1.4.2",),
        {"timeout_s": Column("1.3.6.1.4.1.4491.2.1.27.1.2.9.1.2.2", GAUGE, 10, 1, 65535)},
        {},
    ),
    # docsPnmCmDsOfdmModProfEntry: FileEnable .1, MeasStatus .2, FileName .3
    PnmTest.MODULATION_PROFILE: Row(
        Scope.DS_OFDM,
        3,
        "1.3.6.1.4.1.4491.2.1.27.1.2.11.1.1.3",
        "1.3.6.1.4.1.4491.2.1.27.1.2.11.1.2.3",
        ("1.3.6.1.4.1.4491.2.1.27.1.2.11.1.3.3",),
        {},
        {},
    ),
    # docsPnmCmUsPreEqEntry on an OFDMA ifIndex: FileEnable .1, MeasStatus .8,
    # LastUpdateFileName .9, FileName .10
    PnmTest.US_PRE_EQUALIZER: Row(
        Scope.US_OFDMA,
        80,
        "1.3.6.1.4.1.4491.2.1.27.1.2.10.1.1.80",
        "1.3.6.1.4.1.4491.2.1.27.1.2.10.1.8.80",
        (
            "1.3.6.1.4.1.4491.2.1.27.1.2.10.1.10.80",  # FileName: the coefficients
            "1.3.6.1.4.1.4491.2.1.27.1.2.10.1.9.80",  # LastUpdateFileName
        ),
        {},
        {},
    ),
    # docsIf3CmSpectrumAnalysisCtrlCmd scalars (IF3: Enable .1 ... NumberOfAverages .9;
    # the PNM MIB adds FileEnable .10, MeasStatus .11, FileName .12). FileEnable needs
    # Enable already true, hence the armed Enable.
    PnmTest.SPECTRUM_ANALYZER: Row(
        Scope.MODEM,
        0,
        "1.3.6.1.4.1.4491.2.1.20.1.34.10.0",
        "1.3.6.1.4.1.4491.2.1.20.1.34.11.0",
        ("1.3.6.1.4.1.4491.2.1.20.1.34.12.0",),
        {
            # Integer32 (0..86400) DEFVAL 300
            "inactivity_timeout_s": Column(
                "1.3.6.1.4.1.4491.2.1.20.1.34.2.0", INTEGER, 300, 0, 86_400
            ),
            # Unsigned32 DEFVAL 93000000 / 993000000 (bounded by us to the D3.1 band)
            "first_segment_center_hz": Column(
                "1.3.6.1.4.1.4491.2.1.20.1.34.3.0", GAUGE, 93_000_000, 0, 1_794_000_000
            ),
            "last_segment_center_hz": Column(
                "1.3.6.1.4.1.4491.2.1.20.1.34.4.0", GAUGE, 993_000_000, 0, 1_794_000_000
            ),
            # Unsigned32 (1000000..900000000) DEFVAL 7500000
            "segment_span_hz": Column(
                "1.3.6.1.4.1.4491.2.1.20.1.34.5.0", GAUGE, 7_500_000, 1_000_000, 900_000_000
            ),
            # Unsigned32 (2..2048) DEFVAL 256
            "bins_per_segment": Column("1.3.6.1.4.1.4491.2.1.20.1.34.6.0", GAUGE, 256, 2, 2048),
            # Unsigned32 (50..500) DEFVAL 150
            "noise_bandwidth": Column("1.3.6.1.4.1.4491.2.1.20.1.34.7.0", GAUGE, 150, 50, 500),
            # SpectrumAnalysisWindowFunction (no DEFVAL; hann as PyPNM)
            "window_function": Column(
                "1.3.6.1.4.1.4491.2.1.20.1.34.8.0", INTEGER, "hann", choices=WINDOWS
            ),
            # Unsigned32 (1..1000) DEFVAL 1
            "number_of_averages": Column("1.3.6.1.4.1.4491.2.1.20.1.34.9.0", GAUGE, 1, 1, 1000),
        },
        {"1.3.6.1.4.1.4491.2.1.20.1.34.1.0": 1},  # Enable = true(1)
    ),
    # docsPnmCmDsOfdmSymCapEntry: TrigEnable .1, TrigEnableTimeout .2 (Unsigned32 0..3600,
    # DEFVAL 600; 0 = forever, refused by us, default 60), MeasStatus .8, CaptFileName .9
    PnmTest.SYMBOL_CAPTURE: Row(
        Scope.DS_OFDM,
        3,
        "1.3.6.1.4.1.4491.2.1.27.1.2.2.1.1.3",
        "1.3.6.1.4.1.4491.2.1.27.1.2.2.1.8.3",
        ("1.3.6.1.4.1.4491.2.1.27.1.2.2.1.9.3",),
        {
            "trigger_timeout_s": Column("1.3.6.1.4.1.4491.2.1.27.1.2.2.1.2.3", GAUGE, 60, 1, 3600),
        },
        {},
    ),
}

# The SNMP-only spectrum: the same analyser scalars with FileEnable false; Enable (.1) starts
# the sweep, whose result is walked (docsIf3CmSpectrumAnalysisMeasAmplitudeData): no file.
MIB[PnmTest.SPECTRUM_ANALYZER_SNMP] = Row(
    Scope.MODEM,
    0,
    "1.3.6.1.4.1.4491.2.1.20.1.34.1.0",
    "1.3.6.1.4.1.4491.2.1.20.1.34.11.0",
    (),
    MIB[PnmTest.SPECTRUM_ANALYZER].parameters,
    {},
)

# File test type -> (the MIB's default-name prefix from the FileName DESCRIPTION, PNN type
# byte from the file-type table of reference §3).
FILES = {
    "DS_OFDM_SYMBOL_CAPTURE": ("PNMSymCap", 1),
    "DS_OFDM_CHAN_EST_COEF": ("PNMChEstCoef", 2),
    "DS_CONSTELLATION_DISP": ("PNMDSConDisp", 3),
    "DS_OFDM_RXMER_PER_SUBCAR": ("PNMDsMer", 4),
    "DS_HISTOGRAM": ("PNMHist", 5),
    "US_PRE_EQUALIZER_COEF": ("PNMUsPreEq", 6),
    "US_PRE_EQUALIZER_COEF_LAST_UPDATE": ("PNMUsPreEqLastUpdate", 7),
    "DS_OFDM_FEC_SUMMARY": ("PNMFecSum", 8),
    "SPECTRUM_ANALYZER": ("PNMSpecAnData", 9),
    "DS_OFDM_MODULATION_PROFILE": ("PNMModProfile", 10),
    "SPECTRUM_ANALYZER_SNMP_AMP_DATA": ("", 0),  # walked rows: no default name, no header
}
TEST_FILES = {  # which files each trigger uploads, in order
    PnmTest.RXMER: ["DS_OFDM_RXMER_PER_SUBCAR"],
    PnmTest.CHANNEL_ESTIMATION: ["DS_OFDM_CHAN_EST_COEF"],
    PnmTest.CONSTELLATION: ["DS_CONSTELLATION_DISP"],
    PnmTest.FEC_SUMMARY: ["DS_OFDM_FEC_SUMMARY"],
    PnmTest.HISTOGRAM: ["DS_HISTOGRAM"],
    PnmTest.MODULATION_PROFILE: ["DS_OFDM_MODULATION_PROFILE"],
    PnmTest.US_PRE_EQUALIZER: ["US_PRE_EQUALIZER_COEF", "US_PRE_EQUALIZER_COEF_LAST_UPDATE"],
    PnmTest.SPECTRUM_ANALYZER: ["SPECTRUM_ANALYZER"],
    PnmTest.SYMBOL_CAPTURE: ["DS_OFDM_SYMBOL_CAPTURE"],
    PnmTest.SPECTRUM_ANALYZER_SNMP: ["SPECTRUM_ANALYZER_SNMP_AMP_DATA"],
}
by_test = pytest.mark.parametrize("test", list(PnmTest), ids=lambda test: test.name)


def smi_type(value: object) -> str:
    if isinstance(value, Gauge32):
        return GAUGE
    if isinstance(value, Integer32):
        return INTEGER
    return type(value).__name__


def test_the_table_covers_every_test() -> None:
    assert set(MIB) == set(PnmTest) == set(TEST_FILES)
    assert set(pnm.FILE_SPECS) == set(FILES)


@by_test
def test_enable_status_and_file_name_oids_are_the_mib_s(test: PnmTest) -> None:
    row = MIB[test]
    assert test.scope is row.scope
    assert test.enable_oid(row.if_index) == row.enable
    assert test.meas_status_oid(row.if_index) == row.meas_status
    if test.spec.walked:  # no file, so no file-name column: start_capture refuses it
        assert row.file_names == ()
        with pytest.raises(ValueError, match="uploads no file"):
            pnm.start_capture(None, None, test, 0, [])  # type: ignore[arg-type]  # no I/O
        return
    names = [test.file_name_oid(row.if_index, n) for n in range(len(test.files))]
    assert names == list(row.file_names)


@by_test
def test_parameter_columns_types_ranges_and_defaults_are_the_mib_s(test: PnmTest) -> None:
    row, spec = MIB[test], test.spec
    assert [p.name for p in spec.parameters] == list(row.parameters)
    for parameter in spec.parameters:
        column = row.parameters[parameter.name]
        assert spec.column(parameter.column, row.if_index) == column.oid, parameter.name
        assert parameter.default == column.default, parameter.name
        assert smi_type(parameter.wire(column.default)) == column.smi, parameter.name
        if column.choices is not None:
            assert dict(parameter.choices) == column.choices
            for name, number in column.choices.items():
                assert int(parameter.wire(name)) == number
        else:
            assert (parameter.minimum, parameter.maximum) == (column.minimum, column.maximum)
            assert int(parameter.wire(parameter.maximum)) == parameter.maximum  # fits its type
    armed = {spec.column(column, row.if_index): value for column, value in spec.arm}
    assert armed == row.armed


@by_test
def test_files_default_prefixes_and_pnn_types_are_the_mib_s(test: PnmTest) -> None:
    assert [f.test_type for f in test.files] == TEST_FILES[test]
    for file in test.files:
        assert (file.default_prefix, file.pnn_type) == FILES[file.test_type]


# --- validate_parameters -----------------------------------------------------------------------
DEFAULTS = {
    PnmTest.RXMER: {},
    PnmTest.CHANNEL_ESTIMATION: {},
    PnmTest.CONSTELLATION: {"modulation_order_offset": 0, "number_sample_symbols": 8192},
    PnmTest.FEC_SUMMARY: {"summary_type": "10min"},
    PnmTest.HISTOGRAM: {"timeout_s": 10},
    PnmTest.MODULATION_PROFILE: {},
    PnmTest.US_PRE_EQUALIZER: {},
    PnmTest.SPECTRUM_ANALYZER: {
        "inactivity_timeout_s": 300,
        "first_segment_center_hz": 93_000_000,
        "last_segment_center_hz": 993_000_000,
        "segment_span_hz": 7_500_000,
        "bins_per_segment": 256,
        "noise_bandwidth": 150,
        "window_function": "hann",
        "number_of_averages": 1,
    },
    PnmTest.SYMBOL_CAPTURE: {"trigger_timeout_s": 60},
}
DEFAULTS[PnmTest.SPECTRUM_ANALYZER_SNMP] = DEFAULTS[PnmTest.SPECTRUM_ANALYZER]


@by_test
def test_defaults_complete_missing_parameters(test: PnmTest) -> None:
    assert pnm.validate_parameters(test, None) == DEFAULTS[test]
    assert pnm.validate_parameters(test, {}) == DEFAULTS[test]


def test_given_values_replace_only_their_defaults() -> None:
    values = pnm.validate_parameters(PnmTest.CONSTELLATION, {"number_sample_symbols": 1})
    assert values == {"modulation_order_offset": 0, "number_sample_symbols": 1}


def refused(test: PnmTest, parameters: dict[str, object]) -> dict[str, str]:
    with pytest.raises(InvalidParameters) as caught:
        pnm.validate_parameters(test, parameters)
    return caught.value.errors


@pytest.mark.parametrize(
    "test", [t for t in PnmTest if not DEFAULTS[t]], ids=lambda test: test.name
)
def test_a_test_without_parameters_refuses_any(test: PnmTest) -> None:
    errors = refused(test, {"timeout_s": 1})
    assert errors == {"timeout_s": f"not a parameter of {test.name} (it takes none)"}


def test_unknown_fields_are_named_with_what_the_test_takes() -> None:
    errors = refused(PnmTest.CONSTELLATION, {"samples": 5, "modulation_order_offset": 1})
    assert errors == {
        "samples": "not a parameter of CONSTELLATION (it takes "
        "['modulation_order_offset', 'number_sample_symbols'])"
    }


@pytest.mark.parametrize(
    ("test", "field", "value", "why"),
    [
        (PnmTest.HISTOGRAM, "timeout_s", True, "must be an integer (s)"),
        (PnmTest.HISTOGRAM, "timeout_s", "5", "must be an integer (s)"),
        (PnmTest.HISTOGRAM, "timeout_s", 1.5, "must be an integer (s)"),
        (PnmTest.CONSTELLATION, "modulation_order_offset", False, "must be an integer"),
        (PnmTest.CONSTELLATION, "number_sample_symbols", 0, "must be from 1 to 65535 samples"),
        (PnmTest.CONSTELLATION, "number_sample_symbols", 65536, "must be from 1 to 65535 samples"),
        (PnmTest.CONSTELLATION, "modulation_order_offset", 11, "must be from 0 to 10"),
        (PnmTest.HISTOGRAM, "timeout_s", 0, "must be from 1 to 65535 s"),
        (PnmTest.SYMBOL_CAPTURE, "trigger_timeout_s", 3601, "must be from 1 to 3600 s"),
        (PnmTest.SPECTRUM_ANALYZER, "inactivity_timeout_s", -1, "must be from 0 to 86400 s"),
        (PnmTest.SPECTRUM_ANALYZER, "bins_per_segment", 1, "must be from 2 to 2048 bins"),
        (
            PnmTest.SPECTRUM_ANALYZER,
            "segment_span_hz",
            999_999,
            "must be from 1000000 to 900000000 Hz",
        ),
        (PnmTest.FEC_SUMMARY, "summary_type", "1h", "must be one of ['10min', '24h']"),
        (PnmTest.FEC_SUMMARY, "summary_type", 2, "must be one of ['10min', '24h']"),
        (
            PnmTest.SPECTRUM_ANALYZER,
            "window_function",
            "other",
            "must be one of ['hann', 'blackman_harris', 'rectangular', 'hamming', 'flat_top', "
            "'gaussian', 'chebyshev']",
        ),
    ],
)
def test_each_refused_value_has_its_own_message(
    test: PnmTest, field: str, value: object, why: str
) -> None:
    assert refused(test, {field: value}) == {field: why}


def test_every_refused_field_is_reported_at_once() -> None:
    errors = refused(
        PnmTest.SPECTRUM_ANALYZER,
        {"bins_per_segment": 4096, "window_function": "kaiser", "colour": "red"},
    )
    assert set(errors) == {"bins_per_segment", "window_function", "colour"}
    with pytest.raises(InvalidParameters, match="bins_per_segment: must be from 2 to 2048"):
        pnm.validate_parameters(PnmTest.SPECTRUM_ANALYZER, {"bins_per_segment": 4096})


def test_spectrum_first_centre_above_last_is_refused() -> None:
    errors = refused(
        PnmTest.SPECTRUM_ANALYZER,
        {"first_segment_center_hz": 500_000_000, "last_segment_center_hz": 499_999_999},
    )
    assert errors == {"last_segment_center_hz": "must be at least first_segment_center_hz"}
    one_segment = {"first_segment_center_hz": 500_000_000, "last_segment_center_hz": 500_000_000}
    assert pnm.validate_parameters(PnmTest.SPECTRUM_ANALYZER, one_segment)


def test_spectrum_more_than_1000_segments_is_refused() -> None:
    # 100 MHz to 1099 MHz by 1 MHz: centres 100, 101, ..., 1099 = 1000 segments, the limit
    limit = {
        "first_segment_center_hz": 100_000_000,
        "last_segment_center_hz": 1_099_000_000,
        "segment_span_hz": 1_000_000,
    }
    assert pnm.validate_parameters(PnmTest.SPECTRUM_ANALYZER, limit)
    errors = refused(PnmTest.SPECTRUM_ANALYZER, {**limit, "last_segment_center_hz": 1_100_000_000})
    assert set(errors) == {"segment_span_hz"}
    assert errors["segment_span_hz"].startswith("gives 1001 segments")
    assert "at most 1000" in errors["segment_span_hz"]


def test_cross_field_rules_wait_for_valid_fields() -> None:
    """A range error is reported alone: the cross-field rules need valid numbers."""
    errors = refused(
        PnmTest.SPECTRUM_ANALYZER,
        {"first_segment_center_hz": 900_000_000, "last_segment_center_hz": 2_000_000_000},
    )
    assert set(errors) == {"last_segment_center_hz"}
    assert errors["last_segment_center_hz"] == "must be from 0 to 1794000000 Hz"


# --- MIB default file names --------------------------------------------------------------------
@pytest.mark.parametrize("file_type", sorted(name for name, (prefix, _) in FILES.items() if prefix))
def test_each_mib_default_name_parses_back_to_its_file(file_type: str) -> None:
    prefix = FILES[file_type][0]
    mib_example = f"{prefix}_0010181A2D11_1403405123"  # the DESCRIPTIONs' example, upper case
    assert pnm.parse_default_file_name(mib_example) == (file_type, "0010181a2d11", 1403405123)
    made = pnm.default_file_name(file_type, "00:10:18:1a:2d:11", 1403405123)
    assert made == f"{prefix}_0010181a2d11_1403405123"
    assert pnm.parse_default_file_name(made) == (file_type, "0010181a2d11", 1403405123)


def test_default_name_of_a_test_is_its_first_file_s() -> None:
    name = pnm.default_file_name(PnmTest.US_PRE_EQUALIZER, "0010181a2d11", 7)
    assert name == "PNMUsPreEq_0010181a2d11_7"
