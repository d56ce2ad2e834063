"""`python -m index.pg_local`: its arguments, without starting a server."""

from index.pg_local import main


def test_help_prints_the_usage_instead_of_creating_a_data_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--help"]) == 2
    assert "usage: python -m index.pg_local DATA_DIR" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_no_argument_prints_the_usage(capsys):
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().out
