"""Protocol code for device links (SNMP, TFTP, serial). Imports no Django."""
