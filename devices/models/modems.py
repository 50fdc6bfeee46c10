"""Cable modems: where a PNM capture is triggered, and with which SNMP credentials.

Credentials are stored so workers can reach the modem; they are never returned by the API
and ``__str__``/``repr`` show only the MAC and address, so they never reach a log line.
"""

from __future__ import annotations

from django.db import models

from devices.links.snmp import SnmpTarget


class SnmpVersion(models.TextChoices):
    V2C = "v2c", "SNMPv2c"
    V3 = "v3", "SNMPv3 (USM)"


class SnmpAuthProtocol(models.TextChoices):
    NONE = "", "none"
    MD5 = "md5", "HMAC-MD5"
    SHA = "sha", "HMAC-SHA"
    SHA256 = "sha256", "HMAC-SHA-256"
    SHA512 = "sha512", "HMAC-SHA-512"


class SnmpPrivProtocol(models.TextChoices):
    NONE = "", "none"
    DES = "des", "DES"
    AES = "aes", "AES-128"
    AES256 = "aes256", "AES-256"


class CableModem(models.Model):
    """A DOCSIS cable modem reachable over SNMP, with its last known sysDescr fields."""

    mac_address = models.CharField(
        max_length=17, unique=True, help_text="Lower-case, colon separated: aa:bb:cc:dd:ee:ff"
    )
    ip_address = models.GenericIPAddressField(help_text="IPv4 or IPv6 management address")
    snmp_port = models.PositiveIntegerField(default=161)
    snmp_version = models.CharField(
        max_length=3, choices=SnmpVersion.choices, default=SnmpVersion.V2C
    )
    # v2c: the write community. Never shown by the API nor logged.
    community = models.CharField(max_length=128, blank=True)
    # v3 (USM). The keys are secrets like the community.
    snmp_username = models.CharField(max_length=64, blank=True)
    auth_protocol = models.CharField(
        max_length=8, choices=SnmpAuthProtocol.choices, blank=True, default=""
    )
    auth_key = models.CharField(max_length=128, blank=True)
    priv_protocol = models.CharField(
        max_length=8, choices=SnmpPrivProtocol.choices, blank=True, default=""
    )
    priv_key = models.CharField(max_length=128, blank=True)

    # Last known sysDescr (<<HW_REV: ..; VENDOR: ..; BOOTR: ..; SW_REV: ..; MODEL: ..>>).
    sys_descr = models.TextField(blank=True)
    hw_rev = models.CharField(max_length=64, blank=True)
    vendor = models.CharField(max_length=64, blank=True)
    bootr = models.CharField(max_length=64, blank=True)
    sw_rev = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=64, blank=True)
    sys_descr_updated = models.DateTimeField(null=True, blank=True)

    # Grouping for fleet work: a free tag and the CMTS the modem hangs off (by name).
    tag = models.CharField(max_length=64, blank=True, db_index=True)
    cmts = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="The CMTS (group) this modem is on"
    )

    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["mac_address"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(snmp_port__gte=1, snmp_port__lte=65535),
                name="cablemodem_snmp_port_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.mac_address} ({self.ip_address})"

    def __repr__(self) -> str:
        return f"<CableModem {self.pk} {self}>"

    @property
    def mac_hex(self) -> str:
        """The MAC as 12 hex digits, as PNM file names spell it."""
        return self.mac_address.replace(":", "")

    @property
    def system_description(self) -> dict[str, str]:
        """The sysDescr fields in the seed's JSON shape (empty until first read)."""
        if not self.sys_descr_updated:
            return {}
        return {
            "HW_REV": self.hw_rev,
            "VENDOR": self.vendor,
            "BOOTR": self.bootr,
            "SW_REV": self.sw_rev,
            "MODEL": self.model,
        }

    def snmp_target(self, timeout_s: float, retries: int) -> SnmpTarget:
        """How workers reach this modem (the only place its secrets leave the row)."""
        if self.snmp_version == SnmpVersion.V3:
            return SnmpTarget(
                host=self.ip_address,
                port=self.snmp_port,
                version="3",
                user=self.snmp_username,
                auth_key=self.auth_key,
                priv_key=self.priv_key,
                auth_protocol=self.auth_protocol or "SHA",
                priv_protocol=self.priv_protocol or "AES",
                timeout_s=timeout_s,
                retries=retries,
            )
        return SnmpTarget(
            host=self.ip_address,
            port=self.snmp_port,
            version="2c",
            community=self.community,
            timeout_s=timeout_s,
            retries=retries,
        )
