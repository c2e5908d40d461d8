"""Laziness: ``import enhtrain`` and the info commands import neither torch, optuna nor the optional logger packages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "lightning", "wandb", "comet_ml", "tensorboard", "optuna")

PROBE = """
import json, sys
{body}
print(json.dumps([m for m in {heavy!r} if m in sys.modules]))
"""


def _loaded(body: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body, heavy=HEAVY)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_enhtrain_is_light() -> None:
    assert _loaded("import enhtrain; enhtrain.hookimpl; enhtrain.ConfigError") == []


LEGACY = str(Path(__file__).resolve().parents[1] / "examples" / "legacy.yaml")
INFO_COMMANDS = [["--version"], ["plugins"], ["plugins", "--json"], ["templates", "list"],
                 ["templates", "show", "quickstart"], ["config", "migrate", LEGACY, "-o", "-"]]


def test_info_commands_do_not_import_torch() -> None:
    body = (
        "import contextlib, io\nfrom enhtrain.commands import main\n"
        f"for args in {INFO_COMMANDS!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert main(args) == 0, args"
    )
    assert _loaded(body) == []


def test_runtime_update_commands_do_not_import_torch(tmp_path: Path) -> None:
    # A run that is not running: each command checks its input and the run's lock, and answers with exit 2.
    run = tmp_path / "run"
    run.mkdir()
    (run / "metadata.json").write_text("{}")
    commands = [["runs", "set", str(run), "optimizer.lr=1e-4", "trainer.max_epochs=20"], ["runs", "stop", str(run)],
                ["runs", "checkpoint", str(run)], ["runs", "set", str(run), "optimizer.lr=-1"],
                ["runs", "set", "--help"]]
    body = (
        "import contextlib, io\nfrom enhtrain.commands import main\n"
        f"for args in {commands!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "        assert main(args) == (0 if '--help' in args else 2), args"
    )
    assert _loaded(body) == []


def test_enhanced_cli_is_loaded_on_first_use() -> None:
    loaded = _loaded("import enhtrain\ncls = enhtrain.EnhancedCLI")
    assert "torch" in loaded and "lightning" in loaded
    assert "wandb" not in loaded and "comet_ml" not in loaded


def test_fit_help_does_not_load_the_experiment_schema() -> None:
    # `fit --help` composes no config, so pydantic and the schema stay unloaded; the help still lists
    # `--experiment` and enhtrain's own options.
    probe = (
        "import contextlib, io, json, sys\nfrom enhtrain.commands import main\nout = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "    main(['fit', '--help'])\n"
        "print(json.dumps({'help': out.getvalue(), 'loaded': [m for m in ('pydantic', 'enhtrain.config.schema')"
        " if m in sys.modules]}))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert "--experiment EXPERIMENT" in result["help"] and "--experiment.KEY VALUE" in result["help"]
    assert "args parameter is intended" not in proc.stderr
