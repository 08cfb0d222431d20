"""The fsbench README's "Python API" section, run as written (issue 21 item 6).

Every ```python block of the section runs in order, in one empty folder (the first block makes
the small DoubleMNIST the others read), each in a fresh namespace as a user's script would; the
assertions then check what each example claims to show, so a README that drifts from the API
fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "packages" / "fsbench" / "README.md"
SECTION = "## Python API"


def api_blocks() -> list[str]:
    """The python code blocks of the README's Python API section, in order."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], re.S)


def test_the_section_has_the_examples_the_issue_asks_for() -> None:
    code = "\n".join(api_blocks())
    assert "torchvision.models.resnet18(weights=None)" in code
    assert "fsbench.MAML(" in code
    assert "fsbench.register_method(" in code and "fsbench.table(" in code
    assert "datasets.ImageFolder(" in code and "EpisodeBatchSampler(" in code


def test_readme_api_examples_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torchvision")
    pytest.importorskip("mdmnist")
    import fsbench
    from fsbench.methods import registry

    monkeypatch.chdir(tmp_path)
    spaces: list[dict[str, Any]] = []
    try:
        for number, block in enumerate(api_blocks()):
            namespace: dict[str, Any] = {"__name__": f"readme_block_{number}"}
            exec(compile(block, f"README.md (Python API block {number})", "exec"), namespace)
            spaces.append(namespace)
    finally:
        registry.unregister_method("centroid")
    printed = capsys.readouterr().out
    _setup, resnet, maml, mine, folder, on_disk = spaces

    # a torchvision ResNet-18 was the embedding that ProtoNets trained
    assert resnet["result"].method.backbone is resnet["backbone"]
    assert 0.0 <= resnet["result"].accuracy <= 1.0 and resnet["result"].episodes == 5
    assert [h["iteration"] for h in resnet["result"].history if "loss" in h] == [1, 2, 3]
    # MAML adapted the user's own network with the inner lr it was given
    assert maml["result"].settings["inner_lr"] == 0.4
    assert maml["result"].method.backbone is maml["net"]
    # the user's method ran under the same protocol as ProtoNets and is marked in the table
    assert mine["mine"].result["user_method"]["name"] == "centroid"
    assert mine["mine"].per_episode and len(mine["mine"].per_episode) == 5
    for key in ("way", "shot", "query", "episodes"):
        assert mine["mine"].result[key] == mine["theirs"].result[key]
    assert "| centroid (user method) |" in printed and "| protonet |" in printed
    assert (tmp_path / "runs" / "centroid" / "result.json").is_file()
    # torch Datasets: episodes from a DataLoader, and a run on the ImageFolder splits
    assert tuple(folder["episode"].support_x.shape) == (1, 5, 1, 28, 28)
    assert folder["result"].result["dataset_label"] == "my images"
    assert folder["result"].settings["dataset"] == "folder"
    # the run read back from disk was evaluated again on 5-shot episodes
    assert on_disk["run"].result == fsbench.load_run(tmp_path / "runs" / "protonet").result
    assert on_disk["again"].shot == 5 and on_disk["again"].episodes == 5
