#!/usr/bin/env python3
"""Write small MaxMind DB (.mmdb) files for newtermsd's GeoIP tests.

The format, per the MaxMind DB File Format Specification 2.0:

  [binary search tree][16 zero bytes][data section]["\\xab\\xcd\\xefMaxMind.com"][metadata map]

- Search tree: node_count nodes of two records each (record_size = 24 bits,
  so 6 bytes a node), walked from node 0 one address bit at a time (0 = left).
  A record < node_count points to a node, == node_count means "no data", and
  > node_count points into the data section at (record - node_count - 16).
  This writer builds an IPv6 tree (ip_version 6); IPv4 networks live under
  ::/96, which is where libmaxminddb looks up an IPv4 address.
- Data section and metadata: MaxMind's typed encoding (a control byte with
  the type in the top 3 bits and the size in the low 5, extended types in a
  second byte; big-endian numbers without leading zero bytes).

Running this script regenerates tests/data/geoip/test-asn.mmdb,
test-city.mmdb and test-country.mmdb (committed, so tests never need it). Output is deterministic:
build_epoch is fixed.

    python3 tests/tools/mmdb_writer.py [OUTDIR]
"""
import ipaddress
import os
import struct
import sys

T_POINTER, T_STRING, T_DOUBLE, T_BYTES, T_UINT16, T_UINT32, T_MAP = 1, 2, 3, 4, 5, 6, 7
T_INT32, T_UINT64, T_UINT128, T_ARRAY, T_BOOL, T_FLOAT = 8, 9, 10, 11, 14, 15


class UInt16(int):
    pass


class UInt32(int):
    pass


class UInt64(int):
    pass


def _control(type_, size):
    if size < 29:
        first, extra = size, b""
    elif size < 29 + 256:
        first, extra = 29, bytes([size - 29])
    elif size < 285 + 65536:
        first, extra = 30, struct.pack(">H", size - 285)
    else:
        first, extra = 31, struct.pack(">I", size - 65821)[1:]
    if type_ <= 7:
        return bytes([(type_ << 5) | first]) + extra
    return bytes([first, type_ - 7]) + extra


def _uint(type_, value, width):
    if value < 0 or value >= 1 << (8 * width):
        raise ValueError(f"{value} does not fit in {width} bytes")
    raw = value.to_bytes(width, "big").lstrip(b"\0")
    return _control(type_, len(raw)) + raw


def encode(value):
    """MaxMind DB encoding of a Python value (str, float, bool, dict, list,
    UInt16/UInt32/UInt64; a plain int is encoded as uint32)."""
    if isinstance(value, bool):
        return _control(T_BOOL, 1 if value else 0)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _control(T_STRING, len(raw)) + raw
    if isinstance(value, float):
        return _control(T_DOUBLE, 8) + struct.pack(">d", value)
    if isinstance(value, UInt16):
        return _uint(T_UINT16, value, 2)
    if isinstance(value, UInt64):
        return _uint(T_UINT64, value, 8)
    if isinstance(value, int):
        return _uint(T_UINT32, value, 4)
    if isinstance(value, bytes):
        return _control(T_BYTES, len(value)) + value
    if isinstance(value, dict):
        out = _control(T_MAP, len(value))
        for k, v in value.items():
            out += encode(str(k)) + encode(v)
        return out
    if isinstance(value, list):
        out = _control(T_ARRAY, len(value))
        for v in value:
            out += encode(v)
        return out
    raise TypeError(f"cannot encode {type(value).__name__}")


def _bits(network):
    """The prefix bits of a network in the IPv6 tree (IPv4 under ::/96)."""
    net = ipaddress.ip_network(network, strict=True)
    if net.version == 4:
        value, plen = int(net.network_address), 96 + net.prefixlen
        value_bits = 128
    else:
        value, plen = int(net.network_address), net.prefixlen
        value_bits = 128
    return [(value >> (value_bits - 1 - i)) & 1 for i in range(plen)]


def build(networks, database_type, description):
    """networks: list of (cidr, record dict). Networks must not overlap."""
    # Trie: a node is a 2-list; a child is None (no data), a list (node) or
    # ("data", index).
    root = [None, None]
    records = []
    for cidr, rec in networks:
        bits = _bits(cidr)
        if not bits:
            raise ValueError("a /0 network is not supported")
        node = root
        for depth, b in enumerate(bits):
            last = depth == len(bits) - 1
            child = node[b]
            if last:
                if child is not None:
                    raise ValueError(f"{cidr} overlaps another network")
                node[b] = ("data", len(records))
                records.append(rec)
            else:
                if isinstance(child, tuple):
                    raise ValueError(f"{cidr} overlaps another network")
                if child is None:
                    child = node[b] = [None, None]
                node = child
    # Number the nodes breadth first; root is node 0.
    order, index = [root], {id(root): 0}
    i = 0
    while i < len(order):
        for child in order[i]:
            if isinstance(child, list):
                index[id(child)] = len(order)
                order.append(child)
        i += 1
    node_count = len(order)
    data = b""
    offsets = []
    for rec in records:
        offsets.append(len(data))
        data += encode(rec)

    def record_value(child):
        if child is None:
            return node_count
        if isinstance(child, list):
            return index[id(child)]
        return node_count + 16 + offsets[child[1]]

    tree = bytearray()
    for node in order:
        for child in node:
            v = record_value(child)
            if v >= 1 << 24:
                raise ValueError("database too large for 24-bit records")
            tree += v.to_bytes(3, "big")
    metadata = {
        "node_count": UInt32(node_count),
        "record_size": UInt16(24),
        "ip_version": UInt16(6),
        "database_type": database_type,
        "languages": ["en"],
        "binary_format_major_version": UInt16(2),
        "binary_format_minor_version": UInt16(0),
        "build_epoch": UInt64(1767225600),  # 2026-01-01, fixed so output is reproducible
        "description": {"en": description},
    }
    return bytes(tree) + b"\0" * 16 + data + b"\xab\xcd\xefMaxMind.com" + encode(metadata)


# ---- the test databases --------------------------------------------------------

def _names(en):
    return {"en": en}


ASN_NETWORKS = [
    ("203.0.113.0/24", {"autonomous_system_number": UInt32(64500),
                        "autonomous_system_organization": "Example Cloud Networks"}),
    ("198.51.100.0/24", {"autonomous_system_number": UInt32(64501),
                         "autonomous_system_organization": "Other Transit Ltd"}),
    ("2001:db8:1::/48", {"autonomous_system_number": UInt32(64502),
                         "autonomous_system_organization": "Example IPv6 Hosting"}),
    # records with keys missing or of the wrong type
    ("192.0.2.0/25", {"autonomous_system_organization": "Org Without Number"}),
    ("192.0.2.128/25", {"autonomous_system_number": "not-a-number"}),
]

CITY_NETWORKS = [
    ("203.0.113.0/24", {
        "city": {"geoname_id": UInt32(5809844), "names": _names("Seattle")},
        "continent": {"code": "NA", "geoname_id": UInt32(6255149), "names": _names("North America")},
        "country": {"geoname_id": UInt32(6252001), "iso_code": "US", "names": _names("United States")},
        "location": {"accuracy_radius": UInt16(20), "latitude": 47.6062, "longitude": -122.3321,
                     "time_zone": "America/Los_Angeles"},
        "subdivisions": [{"geoname_id": UInt32(5815135), "iso_code": "WA", "names": _names("Washington")}],
    }),
    ("198.51.100.0/24", {  # country only: no city, subdivision or location
        "continent": {"code": "EU", "geoname_id": UInt32(6255148), "names": _names("Europe")},
        "country": {"geoname_id": UInt32(2921044), "iso_code": "DE", "names": _names("Germany")},
    }),
    ("2001:db8:1::/48", {
        "city": {"geoname_id": UInt32(1850147), "names": _names("Tokyo")},
        "continent": {"code": "AS", "geoname_id": UInt32(6255147), "names": _names("Asia")},
        "country": {"geoname_id": UInt32(1861060), "iso_code": "JP", "names": _names("Japan")},
        "location": {"accuracy_radius": UInt16(50), "latitude": 35.6895, "longitude": 139.6917},
        "subdivisions": [{"iso_code": "13", "names": _names("Tokyo")}],
    }),
    ("2001:db8:2::/48", {
        "city": {"names": _names("São Paulo")},
        "continent": {"code": "SA", "names": _names("South America")},
        "country": {"iso_code": "BR", "names": _names("Brazil")},
        "location": {"latitude": -23.5475, "longitude": -46.63611},
        "subdivisions": [{"iso_code": "SP", "names": _names("São Paulo")}],
    }),
]

COUNTRY_NETWORKS = [
    ("203.0.113.0/24", {
        "continent": {"code": "NA", "names": _names("North America")},
        "country": {"iso_code": "US", "names": _names("United States")},
    }),
]


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = argv[1] if len(argv) > 1 else os.path.join(here, "..", "data", "geoip")
    os.makedirs(outdir, exist_ok=True)
    files = {
        "test-asn.mmdb": build(ASN_NETWORKS, "GeoLite2-ASN", "newtermsd test ASN data"),
        "test-city.mmdb": build(CITY_NETWORKS, "GeoLite2-City", "newtermsd test City data"),
        "test-country.mmdb": build(COUNTRY_NETWORKS, "GeoLite2-Country",
                                   "newtermsd test Country data"),
    }
    for name, blob in files.items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(blob)
        print(f"wrote {os.path.join(outdir, name)} ({len(blob)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
