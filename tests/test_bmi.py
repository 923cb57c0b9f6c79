"""The Basic Model Interface (BMI 2.0) to one column."""

from pathlib import Path

import numpy as np
import pytest

from noahtibet.bmi import NoahTibetBmi
from noahtibet.errors import ConfigError
from noahtibet.legacy_forcing import read_point_file
from noahtibet.point import run_point

REF = Path(__file__).parents[1] / "validation" / "reference" / "tanggula"
DAILY = REF / "forcing_daily_2007_2010.dat"

#: The BMI 2.0 functions (bmi.readthedocs.io, "BMI functions" list).
BMI_FUNCTIONS = """initialize update update_until finalize get_component_name
get_input_item_count get_output_item_count get_input_var_names get_output_var_names
get_var_grid get_var_type get_var_units get_var_itemsize get_var_nbytes get_var_location
get_current_time get_start_time get_end_time get_time_units get_time_step get_value
get_value_ptr get_value_at_indices set_value set_value_at_indices get_grid_rank get_grid_size
get_grid_type get_grid_shape get_grid_spacing get_grid_origin get_grid_x get_grid_y get_grid_z
get_grid_node_count get_grid_edge_count get_grid_face_count get_grid_edge_nodes
get_grid_face_edges get_grid_face_nodes get_grid_nodes_per_face""".split()


@pytest.fixture
def model():
    m = NoahTibetBmi()
    m.initialize(str(DAILY))
    yield m
    m.finalize()


def test_every_bmi_function_is_there():
    missing = [f for f in BMI_FUNCTIONS if not callable(getattr(NoahTibetBmi, f, None))]
    assert not missing


def test_stepping_equals_the_point_run(model):
    times, rec, depth = run_point(read_point_file(DAILY))
    n = 60
    t = np.empty(model.get_grid_size(1))
    skin = np.empty(1)
    for k in range(n):
        model.update()
        model.get_value("soil_temperature", t)
        assert np.array_equal(t, rec.stc[k, 0]), k
        model.get_value("skin_temperature", skin)
        assert skin[0] == rec.output("skin_temperature")[k, 0]
    assert model.get_current_time() == n * 86400.0
    # update_until continues to the same states
    model.update_until(100 * 86400.0)
    model.get_value("soil_liquid_water", t)
    assert np.array_equal(t, rec.sh2o[99, 0])
    assert model.get_time_reference() + np.timedelta64(100 * 86400, "s") == \
        np.datetime64(times[99], "s")
    assert model.get_end_time() == times.size * 86400.0
    # the pointer follows the state in place
    ptr = model.get_value_ptr("soil_temperature")
    model.update()
    assert np.array_equal(ptr, rec.stc[100, 0])


def test_metadata(model):
    assert model.get_input_item_count() == 7 and model.get_output_item_count() == 9
    assert model.get_var_units("soil_temperature") == "K"
    assert model.get_var_units("precipitation_flux") == "kg m-2 s-1"
    assert model.get_var_grid("soil_temperature") == 1 and model.get_var_grid("snow_depth") == 0
    assert model.get_grid_type(1) == "points" and model.get_grid_size(1) == 20
    assert model.get_var_nbytes("soil_moisture") == 20 * 8
    z = model.get_grid_z(1, np.empty(20))
    assert z[0] == pytest.approx(-0.0225) and np.all(np.diff(z) < 0)
    assert model.get_grid_y(1, np.empty(20))[0] == pytest.approx(33.02)
    assert model.get_time_units() == "s" and model.get_time_step() == 86400.0
    with pytest.raises(KeyError, match="no variable"):
        model.get_var_units("soil_temp")
    with pytest.raises(NotImplementedError):
        model.get_grid_spacing(1, np.empty(1))


def test_set_value_replaces_the_forcing_of_the_next_step(model):
    ref = NoahTibetBmi()
    ref.initialize(str(DAILY))
    air = np.empty(1)
    model.get_value("air_temperature", air)
    model.set_value("air_temperature", air + 10.0)
    assert model.get_value("air_temperature", np.empty(1))[0] == air[0] + 10.0
    model.update()
    ref.update()
    a, b = np.empty(1), np.empty(1)
    model.get_value("skin_temperature", a)
    ref.get_value("skin_temperature", b)
    assert a[0] > b[0] + 1.0          # a warmer air step warms the surface
    # the file's forcing again at the next step
    x, y = np.empty(1), np.empty(1)
    assert model.get_value("air_temperature", x)[0] == ref.get_value("air_temperature", y)[0]
    with pytest.raises(KeyError, match="output"):
        model.set_value("soil_temperature", np.zeros(20))
    with pytest.raises(ValueError, match="finite"):
        model.set_value("air_temperature", np.array([np.nan]))


def test_toml_configuration(tmp_path):
    cfg = tmp_path / "bmi.toml"
    cfg.write_text(f'forcing_file = "{DAILY}"\nlegacy_quirks = false\n')
    m = NoahTibetBmi()
    m.initialize(str(cfg))
    m.update()
    quirks = NoahTibetBmi()
    quirks.initialize(str(DAILY))
    quirks.update()
    a = m.get_value("soil_temperature", np.empty(20))
    b = quirks.get_value("soil_temperature", np.empty(20))
    assert not np.array_equal(a, b)        # the consistent physics differs from the legacy's
    cfg.write_text(f'forcing_file = "{DAILY}"\nquirks = false\n')
    with pytest.raises(ConfigError, match="quirks"):
        NoahTibetBmi().initialize(str(cfg))


def test_calls_before_initialize_and_past_the_end(tmp_path):
    with pytest.raises(RuntimeError, match="initialize"):
        NoahTibetBmi().update()
    m = NoahTibetBmi()
    m.initialize(str(DAILY))
    m.update_until(m.get_end_time())
    with pytest.raises(RuntimeError, match="no step left"):
        m.update()
    with pytest.raises(ValueError, match="whole number of steps"):
        m.update_until(m.get_current_time() - 1.0)
