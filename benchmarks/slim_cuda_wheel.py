"""An mlx-cuda wheel without the cubins an sm_90 GPU (H100, H200) cannot run, to fit a 64 MiB transfer.

    python3 benchmarks/slim_cuda_wheel.py WHEEL OUTDIR [--lzma]

mlx-cuda-13 0.32.4's wheel is 90 MB, more than the lent GPU machine takes (64 MiB with the checkout). Each of
the 99 fatbins in its libmlx.so holds PTX for sm_120 and cubins for sm_75, 80, 90, 100, 120 and 121. This drops
the sm_100, sm_120 and sm_121 cubins (which no compute capability 9.0 GPU can load): the entries kept are moved
together byte for byte, each fatbin's header gets its shorter size, the freed bytes are zeroed, and RECORD gets
the library's new hash (its lines end in LF). The wheel's name, other files and zip entries are unchanged.
The GPU run was made with the wheel this writes (its sha256 is in benchmarks/results/cuda-h200.json under "wheels").
--lzma compresses its entries with LZMA instead (58 to 50 MB; pip reads such wheels), to leave room for the
server's and llguidance's wheels beside it; the files installed are the same.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import sys
import zipfile
from pathlib import Path

MAGIC = 0xBA55ED50  # a fatbin's header
LIBRARY = "mlx/lib/libmlx.so"


def section(elf: bytes, name: bytes) -> tuple[int, int]:
    """(offset, size) of a 64-bit little-endian ELF file's section."""
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    (names_offset,) = struct.unpack_from("<Q", elf, shoff + shstrndx * shentsize + 0x18)
    for i in range(shnum):
        header = shoff + i * shentsize
        (name_at,) = struct.unpack_from("<I", elf, header)
        offset, size = struct.unpack_from("<QQ", elf, header + 0x18)
        if elf[names_offset + name_at :].split(b"\0", 1)[0] == name:
            return offset, size
    raise SystemExit(f"no {name.decode()} section")


def slim(library: bytes, newest: int = 90) -> tuple[bytes, int]:
    """The library without cubins for GPUs newer than sm_NEWEST, and the bytes dropped."""
    out = bytearray(library)
    start, size = section(library, b".nv_fatbin")
    pos, dropped = start, 0
    while pos < start + size - 16:
        magic, _, header_size, fat_size = struct.unpack_from("<IHHQ", out, pos)
        if magic != MAGIC:
            pos += 8
            continue
        entry, end, kept = pos + header_size, pos + header_size + fat_size, []
        while entry < end:
            kind, _, entry_header = struct.unpack_from("<HHI", out, entry)
            (payload,) = struct.unpack_from("<Q", out, entry + 8)
            (arch,) = struct.unpack_from("<I", out, entry + 28)
            blob = bytes(out[entry : entry + entry_header + payload])
            if kind == 2 and arch > newest:  # 2: a cubin (ELF); 1: PTX
                dropped += len(blob)
            else:
                kept.append(blob)
            entry += entry_header + payload
        new = b"".join(kept)
        out[pos + header_size : end] = new + bytes(fat_size - len(new))
        struct.pack_into("<Q", out, pos + 8, len(new))
        pos = end
    return bytes(out), dropped


def main() -> None:
    wheel, outdir = Path(sys.argv[1]), Path(sys.argv[2])
    packed = (
        {"compress_type": zipfile.ZIP_LZMA}
        if "--lzma" in sys.argv[3:]
        else {"compress_type": zipfile.ZIP_DEFLATED, "compresslevel": 9}
    )
    outdir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as old, zipfile.ZipFile(outdir / wheel.name, "w") as new:
        library, dropped = slim(old.read(LIBRARY))
        digest = base64.urlsafe_b64encode(hashlib.sha256(library).digest()).rstrip(b"=").decode()
        for info in old.infolist():
            data = old.read(info)
            if info.filename == LIBRARY:
                data = library
            elif info.filename.endswith(".dist-info/RECORD"):
                entry = f"{LIBRARY},sha256={digest},{len(library)}".encode()
                data = b"".join(
                    (entry if line.startswith(f"{LIBRARY},".encode()) else line) + b"\n" for line in data.splitlines()
                )
            if info.is_dir():
                new.writestr(info, data)
            else:
                new.writestr(info, data, **packed)
    print(
        f"{outdir / wheel.name}: {dropped / 1e6:.1f} MB of cubins dropped, "
        f"{(outdir / wheel.name).stat().st_size / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
