from workbench.cli import main


def test_fetch_then_info_prints_counts_regions_and_reliability(mirror, data_cache, capsys):
    assert main(["data", "fetch", "cowley2023_v4", "--mirror", str(mirror)]) == 0
    out = capsys.readouterr().out
    assert "ok  cowley_v4/images/images_210325.zip" in out
    assert (data_cache / "cowley_v4" / "images" / "images_210325.zip").is_file()
    # info works from the cache alone (no mirror)
    assert main(["data", "info", "cowley2023_v4"]) == 0
    out = capsys.readouterr().out
    assert "stimuli: 640" in out
    assert "region V4 (macaque): 50 neuroids kept of 50 recorded, 6-10 repeats per stimulus" in out
    assert "median split-half reliability 0.7" in out
    assert "noise ceiling (rsa)" in out and "noise ceiling (regression)" in out
    assert "license: GPL-3.0" in out and "Cowley BR" in out


def test_info_with_options_and_rdm_regions(mirror, capsys):
    assert main(["data", "info", "cowley2023_v4", "--mirror", str(mirror), "-o", "session=201025"]) == 0
    assert "stimuli: 1200" in capsys.readouterr().out
    assert main(["data", "info", "kriegeskorte2008_92", "--mirror", str(mirror)]) == 0
    out = capsys.readouterr().out
    assert "region IT (monkey) (macaque): published RDM only" in out
    assert "Kriegeskorte N" in out


def test_list_and_errors(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "kriegeskorte2008_92" in out and "allen2019_neuropixels_natural_scenes" in out
    assert main(["data", "info", "cowley"]) == 1
    assert "unknown dataset 'cowley'" in capsys.readouterr().err
    assert main(["data", "info", "cowley2023_v4"]) == 1  # nothing cached, no mirror, no network
    assert "cowley_v4/" in capsys.readouterr().err
