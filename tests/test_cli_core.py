"""The command line as a user meets it: `mobilenetv2 --help`, `python -m mobilenetv2`, `list`."""

import subprocess
import sys

from mobilenetv2.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mobilenetv2", *args], capture_output=True, text=True, timeout=120)


def test_python_m_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("info", "list"):
        assert command in result.stdout


def test_list_filters_with_a_pattern(capsys):
    assert main(["list", "mobilenet_v2_1*"]) == 0
    assert capsys.readouterr().out.split() == ["mobilenet_v2_100", "mobilenet_v2_130", "mobilenet_v2_140"]


def test_bad_model_from_a_real_process_is_one_line_exit_2():
    result = run_cli("info", "mobilenet_v2_999")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown model 'mobilenet_v2_999'" in result.stderr and "mobilenet_v2" in result.stderr


def test_info_prints_the_reference_counts():
    result = run_cli("info", "mobilenet_v2")
    assert result.returncode == 0
    assert "params: 3,504,872" in result.stdout
    assert "multiply-adds: 300,774,272" in result.stdout
