"""Spin-up passes of a legacy point-forcing file (``loop_for_a_while = L > 0``).

The legacy driver repeats the period startdate .. enddate - DT L + 1 times with the
state carried over (spec/physics.md section 1.5) and writes pass k to OUTPUT.k.
"""

import re
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from noahtibet.cli import main
from noahtibet.errors import InputError
from noahtibet.legacy_forcing import read_point_file
from noahtibet.point import run_point

REF = Path(__file__).parents[1] / "validation" / "reference" / "tanggula"
DAILY = REF / "forcing_daily_2007_2010.dat"


def point_file(path: Path, start: str, end: str, loop: int, last_record: str) -> Path:
    """The Tanggula daily file with another period and loop, records up to last_record."""
    text = DAILY.read_text()
    head, records = text.split("<Forcing>", 1)
    head = re.sub(r'startdate = "\d+"', f'startdate = "{start}"', head)
    head = re.sub(r'enddate = "\d+"', f'enddate = "{end}"', head)
    head = re.sub(r"loop_for_a_while = \d+", f"loop_for_a_while = {loop}", head)
    tag, *rows = records.splitlines(keepends=True)
    stamp = f"{last_record[0:4]} {last_record[4:6]} {last_record[6:8]}"
    end_at = next(i for i, line in enumerate(rows) if line.startswith(stamp))
    path.write_text(head + "<Forcing>" + tag + "".join(rows[:end_at + 1]))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("passes")
    # one year: a looping file covers startdate .. enddate - 1 day, the plain file both ends
    looped = point_file(d / "loop2.dat", "200801010000", "200901010000", 2, "20081231")
    looped3 = point_file(d / "loop3.dat", "200801010000", "200901010000", 3, "20081231")
    plain = point_file(d / "plain.dat", "200801010000", "200812310000", 0, "20081231")
    return looped, looped3, plain


def test_first_pass_is_the_plain_run(files):
    looped, _, plain = files
    t0, r0, _ = run_point(read_point_file(looped), record_pass=0)
    tp, rp, _ = run_point(read_point_file(plain))
    assert np.array_equal(t0, tp) and t0.size == 366
    assert np.array_equal(r0.stc, rp.stc) and np.array_equal(r0.sh2o, rp.sh2o)


def test_passes_carry_the_state_and_approach_a_cycle(files):
    looped, looped3, _ = files
    case = read_point_file(looped)
    stc = [run_point(case, record_pass=k)[1].stc[:, 0] for k in range(3)]
    # the state is carried: each pass differs from the previous one
    assert not np.array_equal(stc[0], stc[1]) and not np.array_equal(stc[1], stc[2])
    # spin-up: the change from one pass to the next shrinks in the deep layers
    d1 = np.abs(stc[1][:, -5:] - stc[0][:, -5:]).max()
    d2 = np.abs(stc[2][:, -5:] - stc[1][:, -5:]).max()
    assert d2 < d1
    # a pass does not depend on how many passes follow it
    _, r3, _ = run_point(read_point_file(looped3), record_pass=2)
    assert np.array_equal(r3.stc[:, 0], stc[2])
    # default: the last pass
    _, last, _ = run_point(case)
    assert np.array_equal(last.stc[:, 0], stc[2])


def test_pass_out_of_range(files):
    looped, _, _ = files
    with pytest.raises(InputError, match="pass 3 does not exist"):
        run_point(read_point_file(looped), record_pass=3)


def test_command_writes_the_chosen_pass(files, tmp_path):
    looped, _, _ = files
    out = tmp_path / "p1.nc"
    assert main(["-q", "point", str(looped), "--pass", "1", "--output", str(out)]) == 0
    _, r1, _ = run_point(read_point_file(looped), record_pass=1)
    with netCDF4.Dataset(out) as nc:
        assert nc.spinup_pass == 1 and nc.spinup_passes == 3
        assert np.array_equal(nc["soil_temperature"][:], r1.stc[:, 0])
        assert "OUTPUT.0001" in nc.comment
