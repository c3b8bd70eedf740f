"""`neurofusion monitor --snapshot` renders in a short-lived process attached to the core: the core process itself
never imports or maps Qt (real processes: an LSL stream, the core, its render process; Qt offscreen)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# the core's own process: `neurofusion monitor` as the CLI runs it, then what it loaded, on stderr's last line
CORE = """
import json, sys
from monitor.cli import main
code = main(sys.argv[1:])
qt_modules = sorted(name for name in sys.modules if name.split('.')[0] in ('PyQt6', 'pyqtgraph'))
with open('/proc/self/maps') as maps:
    qt_libraries = sorted({line.split()[-1] for line in maps if 'libQt6' in line})
print(json.dumps({'qt_modules': qt_modules, 'qt_libraries': qt_libraries}), file=sys.stderr)
sys.exit(code)
"""


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_the_core_does_not_load_qt_when_a_snapshot_is_asked_for(tmp_path, private_runtime_dir):
    from simulators.electrodes import ElectrodeLayout
    from tests.gui.streams import BandNoiseSource, LiveStream

    stream = LiveStream(BandNoiseSource(ElectrodeLayout.ring(8)), name="core-snapshot").start()
    env = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen")
    shot = tmp_path / "shot.png"
    try:
        done = subprocess.run([sys.executable, "-c", CORE, "monitor", "--source-id", stream.source_id,
                               "--no-inference", "--snapshot", str(shot), "--snapshot-after", "1"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=90)  # fmt: skip
    finally:
        stream.vanish()
    assert done.returncode == 0, done.stderr
    assert f"snapshot written to {shot}" in done.stderr
    assert png_size(shot) == (1600, 1000)
    loaded = json.loads(done.stderr.strip().splitlines()[-1])
    assert loaded == {"qt_modules": [], "qt_libraries": []}, loaded

