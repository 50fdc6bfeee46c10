"""Helpers of the PNM pipeline tests."""

# Fast, bounded timings for the worker under test (production defaults are seconds).
WORKER_ENV = {
    "PNM_POLL_INTERVAL_S": "0.1",
    "PNM_SNMP_TIMEOUT_S": "0.3",
    "PNM_SNMP_RETRIES": "0",
    "PNM_MEASURE_DEADLINE_S": "3",
    "PNM_UPLOAD_DEADLINE_S": "3",
    "PNM_MAX_CONSECUTIVE_FAILURES": "2",
}
