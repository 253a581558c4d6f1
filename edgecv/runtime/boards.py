"""Microcontroller boards: their RAM and flash, and whether a model fits (``--mcu-profile``).

A model fits a board when the tensor arena it must reserve (:func:`edgecv.runtime.tflm.
reserved_arena`, what ``kTensorArenaSize`` says) is no more than the board's RAM and the model's
bytes no more than its flash. That is all that is measured here: the code of TFLite Micro and
its kernels (flash), the stack, the heap and the rest of the application (RAM) also need room,
and their size depends on the toolchain, the kernels linked and the application, so no figure
is guessed for them (:data:`NOT_COUNTED`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgecv.errors import UsageError, unknown_name

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class BoardProfile:
    """A board's on-chip RAM and the flash a model can be stored in, in bytes, and where the
    figures come from (``source``: the vendor's document; ``custom`` for ``--mcu-profile
    RAM,FLASH``)."""

    name: str
    board: str
    ram_bytes: int
    flash_bytes: int
    source: str
    note: str = ""

    def to_dict(self) -> dict:
        record = {"profile": self.name, "board": self.board, "ram_bytes": self.ram_bytes,
                  "flash_bytes": self.flash_bytes, "source": self.source}
        return {**record, "note": self.note} if self.note else record


# Common boards TFLite Micro runs on; RAM is the chip's SRAM, flash the memory the model is
# linked into (on-chip, or the board's QSPI flash where the chip has none).
BOARDS: dict[str, BoardProfile] = {b.name: b for b in (
    BoardProfile("nano33ble", "Arduino Nano 33 BLE Sense (Nordic nRF52840)", 256 * KIB, 1 * MIB,
                 "Nordic Semiconductor, nRF52840 Product Specification: 1 MB flash, 256 KB RAM"),
    BoardProfile("stm32f746disco", "STM32F746G-DISCO (ST STM32F746NG)", 320 * KIB, 1 * MIB,
                 "STMicroelectronics, STM32F745xx/STM32F746xx datasheet: 1 Mbyte flash, "
                 "320 Kbytes SRAM (64 Kbytes of it DTCM)",
                 "the board's 8 MB SDRAM and 16 MB QSPI flash are not counted"),
    BoardProfile("esp32s3", "ESP32-S3-DevKitC-1 N8 (Espressif ESP32-S3-WROOM-1-N8)", 512 * KIB,
                 8 * MIB, "Espressif, ESP32-S3 Series Datasheet: 512 KB SRAM; ESP32-S3-WROOM-1 "
                 "datasheet: 8 MB flash in the N8 module",
                 "PSRAM (8 MB in the N8R8 module) is not counted; the Wi-Fi/BLE stacks use part "
                 "of the SRAM"),
    BoardProfile("pico", "Raspberry Pi Pico (RP2040)", 264 * KIB, 2 * MIB,
                 "Raspberry Pi, RP2040 Datasheet: 264 kB on-chip SRAM; Raspberry Pi Pico "
                 "Datasheet: 2 MB QSPI flash"),
    BoardProfile("sparkfun_edge", "SparkFun Edge (Ambiq Apollo3 Blue)", 384 * KIB, 1 * MIB,
                 "Ambiq Micro, Apollo3 Blue MCU Datasheet: 1 MB flash, 384 KB SRAM"),
)}

NOT_COUNTED = ("not counted: the code of TFLite Micro and its kernels (flash), the stack, heap "
               "and the rest of the application (RAM); their size depends on the toolchain and "
               "the application and is not measured here")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib)?\s*$", re.IGNORECASE)
_UNITS = {None: 1, "b": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": MIB, "mb": MIB, "mib": MIB}


def parse_size(text: str, what: str, spec: str) -> int:
    """``256K`` / ``1M`` / ``512KiB`` / ``2MB`` / ``65536`` -> bytes (K and M are binary, as
    microcontroller datasheets mean them); UsageError naming ``what`` of ``spec`` otherwise."""
    match = _SIZE.match(text)
    if match is None:
        raise UsageError(f"`mcu_profile` '{spec}': the {what} '{text}' is not a size; write it "
                         "like 256K, 1M or 262144 (bytes).")
    size = int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower() or None])
    if size < 1:
        raise UsageError(f"`mcu_profile` '{spec}': the {what} must be more than 0 bytes.")
    return size


def parse_profile(spec: str) -> BoardProfile:
    """``--mcu-profile``: a board of :data:`BOARDS` by name, or ``RAM,FLASH`` (e.g.
    ``256K,1M``) for a board of your own; UsageError for anything else."""
    text = spec.strip()
    if "," in text:
        parts = text.split(",")
        if len(parts) != 2:
            raise UsageError(f"`mcu_profile` '{spec}' has {len(parts)} parts; give RAM,FLASH "
                             "(e.g. 256K,1M) or a board name: " + ", ".join(BOARDS) + ".")
        ram, flash = (parse_size(part, what, spec) for part, what in zip(parts, ("RAM", "flash")))
        return BoardProfile(text.replace(" ", ""), "custom", ram, flash, "--mcu-profile")
    if text.lower() in BOARDS:
        return BOARDS[text.lower()]
    raise unknown_name("`mcu_profile`", text, BOARDS, "Or give RAM,FLASH, e.g. 256K,1M.")


def parse_profiles(specs: list[str] | None) -> list[BoardProfile]:
    """Every ``--mcu-profile`` given, in order, duplicates dropped (default: none)."""
    profiles = [parse_profile(spec) for spec in specs or []]
    return list({p.name: p for p in profiles}.values())


def fit(profile: BoardProfile, arena_bytes: int, model_bytes: int) -> dict:
    """Whether ``arena_bytes`` (the arena to reserve) fits the board's RAM and ``model_bytes``
    its flash, with the margin of each (negative: short by that much), and what is not counted
    (:data:`NOT_COUNTED`)."""
    ram_margin = profile.ram_bytes - arena_bytes
    flash_margin = profile.flash_bytes - model_bytes
    return {**profile.to_dict(), "arena_bytes": arena_bytes, "model_bytes": model_bytes,
            "ram_margin_bytes": ram_margin, "flash_margin_bytes": flash_margin,
            "fits_ram": ram_margin >= 0, "fits_flash": flash_margin >= 0,
            "fits": ram_margin >= 0 and flash_margin >= 0, "not_counted": NOT_COUNTED}


def fit_text(record: dict) -> str:
    """A :func:`fit` record in words: ``"nano33ble: fits (arena 61.0 of 256.0 KiB RAM, 195.0
    KiB spare; model 90.4 of 1024.0 KiB flash, 933.6 KiB spare)"``."""
    def part(used: int, total: int, margin: int, memory: str) -> str:
        spare = (f"{margin / KIB:.1f} KiB spare" if margin >= 0
                 else f"{-margin / KIB:.1f} KiB short")
        return f"{used / KIB:.1f} of {total / KIB:.1f} KiB {memory}, {spare}"

    ram = part(record["arena_bytes"], record["ram_bytes"], record["ram_margin_bytes"], "RAM")
    flash = part(record["model_bytes"], record["flash_bytes"], record["flash_margin_bytes"],
                 "flash")
    verdict = "fits" if record["fits"] else "does not fit"
    return f"{record['profile']}: {verdict} (arena {ram}; model {flash})"
