import json

from llink_app.__main__ import main
from tests.unit.test_align import write_pairs


def test_sweep_scores_every_setting_and_the_paper_preset(tiny_dirs, tmp_path):
    data = write_pairs(tmp_path / "pairs.tsv")
    out = tmp_path / "sweep"
    rc = main(["teacher", "sweep", "--layers", "0,1", "--poolings", "mean", "--norms", "none,zscore,zscore_length",
               f"--train_data={data}", f"--dev_data={data}", "--decoder", tiny_dirs["decoder"],
               "--encoder", tiny_dirs["encoder"], "--steps", "30", "--batch_size", "16", f"--out={out}"])
    assert rc == 0
    res = json.loads((out / "sweep.json").read_text())
    names = [r["name"] for r in res["rows"]]
    assert names[0] == "paper" and len(names) == 7  # paper + 2 layers x 1 pooling x 3 norms
    assert res["best"] != "paper" and res["best"] in names
    best = next(r for r in res["rows"] if r["name"] == res["best"])
    assert best["dev_r1"] == max(r["dev_r1"] for r in res["rows"] if r["name"] != "paper")
    assert (out / "sweep.png").stat().st_size > 1000


def test_sweep_rejects_a_bad_grid(tiny_dirs, tmp_path, capsys):
    assert main(["teacher", "sweep", "--layers", "0,99", "--decoder", tiny_dirs["decoder"], "--encoder", tiny_dirs["encoder"]]) == 2
    assert "bad layer" in capsys.readouterr().err
