"""vecfs_query.py - one request per query on a kept-open vecfs query file.

Standard library only (fcntl, struct, os). The wire format is the one of
contrib/vecfs_query.h and docs/filesystem.md "One-request queries".

    from vecfs_query import QueryHandle
    with QueryHandle("/mnt/vec/docs/.query/mine") as q:
        for name, distance in q.search([0.1, 0.2, 0.3], k=5):
            print(name, distance)

search() sends the query and gets the result in one ioctl (one FUSE
request). Errors raise OSError with the ioctl's errno and the daemon's
message. Queries too big for the 16 KiB command (dim above 4089, less with
a filter) or results too big for it go through the file path instead: a
text query written to, and read back from, the sibling query file
"<path>.fallback".
"""

import errno
import fcntl
import os
import struct

REQ_MAGIC = 0x51525156  # "VQRQ"
RES_MAGIC = 0x53525156  # "VQRS"
VERSION = 1
HEADER = 24
FLAG_K, FLAG_EF, FLAG_FILTER = 1, 2, 4
BUF_4K, BUF_16K = 4096, 16380


def _iowr(nr, size):
    """_IOWR('Q', nr, size bytes) as <asm-generic/ioctl.h> builds it."""
    return (3 << 30) | (size << 16) | (ord("Q") << 8) | nr


IOC_QUERY_4K = _iowr(0xF0, BUF_4K)  # 0xD00051F0
IOC_QUERY_16K = _iowr(0xF1, BUF_16K)  # 0xFFFC51F1
_REQ = struct.Struct("<IHHIIII")
_RES = struct.Struct("<IHHiIII")


def encode_request(size, vector, k=None, ef=None, filter=None):
    """The request buffer (a bytearray of `size` bytes); raises OSError
    E2BIG when the vector and filter do not fit in it."""
    flt = filter.encode() if isinstance(filter, str) else filter
    flags = (FLAG_K if k is not None else 0) | (FLAG_EF if ef is not None else 0) | \
        (FLAG_FILTER if flt is not None else 0)
    dim = len(vector)
    if HEADER + 4 * dim + len(flt or b"") > size:
        raise OSError(errno.E2BIG, "query does not fit %d bytes" % size)
    buf = bytearray(size)
    _REQ.pack_into(buf, 0, REQ_MAGIC, VERSION, flags, k or 0, ef or 0, dim, len(flt or b""))
    struct.pack_into("<%df" % dim, buf, HEADER, *vector)
    if flt:
        buf[HEADER + 4 * dim:HEADER + 4 * dim + len(flt)] = flt
    return buf


def decode_result(buf, count):
    """[(name, distance)] of a successful result holding count records."""
    magic, version, _flags, status, n, length, _need = _RES.unpack_from(buf, 0)
    if magic != RES_MAGIC or version != VERSION or status != 0 or n != count \
            or not HEADER <= length <= len(buf):
        raise OSError(errno.EPROTO, "malformed result")
    out, at = [], HEADER
    for _ in range(count):
        if at + 6 > length:
            raise OSError(errno.EPROTO, "truncated result")
        dist, nlen = struct.unpack_from("<fH", buf, at)
        at += 6
        if at + nlen > length:
            raise OSError(errno.EPROTO, "truncated result")
        out.append((bytes(buf[at:at + nlen]).decode("utf-8", "surrogateescape"), dist))
        at += nlen
    return out


def error_message(buf):
    """The daemon's message in an error result, or ""."""
    magic, _v, _f, status, _n, length, _need = _RES.unpack_from(buf, 0)
    if magic != RES_MAGIC or status >= 0 or not HEADER <= length <= len(buf):
        return ""
    return bytes(buf[HEADER:length]).decode("utf-8", "replace")


def _unescape(field):
    out, i = [], 0
    while i < len(field):
        c = field[i]
        if c == "\\" and i + 1 < len(field):
            out.append({"t": "\t", "n": "\n", "0": "\0", "\\": "\\"}.get(field[i + 1], field[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


class QueryHandle:
    """A query file kept open for one-request queries."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def search(self, vector, k=10, ef=None, filter=None):
        """The k nearest neighbours of vector (floats) as [(name, distance)],
        nearest first. k, ef or filter None: the query file's setting
        (user.k, user.ef, user.filter), else the collection's default.
        filter is a filter text (docs/filesystem.md, Filters: e.g.
        "year >= 2020 and lang in (en, de)"; "" means no filter). Raises
        OSError(errno, message) on failure."""
        for size, cmd in ((BUF_4K, IOC_QUERY_4K), (BUF_16K, IOC_QUERY_16K)):
            try:
                buf = encode_request(size, vector, k, ef, filter)
            except OSError:
                continue  # too big for this command: the next one
            try:
                count = fcntl.ioctl(self.fd, cmd, buf, True)
            except OSError as e:
                if e.errno == errno.E2BIG:
                    continue  # the result did not fit: the next command
                msg = error_message(buf) if e.errno not in (errno.ENOTTY, errno.EFAULT) else ""
                raise OSError(e.errno, msg or os.strerror(e.errno)) from None
            return decode_result(buf, count)
        return self._search_file(vector, k, ef, filter)

    def _search_file(self, vector, k, ef, filter):
        """The file path of SPEC 3.3 for what no command can carry."""
        if filter is not None and "\n" in filter:
            raise OSError(errno.EINVAL, "a filter cannot hold a newline")
        lines = ["k = %d" % k] if k is not None else []
        if ef is not None:
            lines.append("ef = %d" % ef)
        if filter:
            lines.append("filter = " + filter)
        lines.append(" ".join(repr(float(x)) for x in vector))
        # One read-write handle: the write is the query, the read runs it.
        with open(self.path + ".fallback", "w+b", buffering=0) as f:
            f.write(("\n".join(lines) + "\n").encode())
            f.seek(0)
            data = f.readall()
        out = []
        for line in data.decode("utf-8", "surrogateescape").splitlines():
            name, dist = line.rsplit("\t", 1)
            out.append((_unescape(name), float(dist)))
        return out

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
