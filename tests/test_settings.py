"""Settings precedence (defaults < file < environment < flags) and the messages of bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.settings import Settings, SettingsError, load_settings


def test_defaults_are_offline_friendly() -> None:
    settings = load_settings(environ={}, config_file=None)
    assert settings == Settings()
    assert settings.llm.backend == "extractive"
    assert settings.index.embedding_model == "intfloat/multilingual-e5-small"


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "rag.toml"
    config.write_text(
        '[retrieval]\ntop_k = 7\n[llm]\nbackend = "ollama"\nmodel = "from-file"\n', encoding="utf-8"
    )
    environ = {"RAG_LLM__MODEL": "from-env", "RAG_RETRIEVAL__TOP_K": "9"}
    settings = load_settings(config, environ=environ, overrides={"retrieval.top_k": 3, "llm.base_url": None})
    assert settings.llm.backend == "ollama"  # file
    assert settings.llm.model == "from-env"  # env beats file
    assert settings.retrieval.top_k == 3  # flag beats env
    assert settings.llm.base_url is None  # a flag left out changes nothing


def test_bad_value_names_setting_and_env_variable() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(environ={"RAG_LLM__BACKEND": "gpt5"})
    message = str(error.value)
    assert "llm.backend" in message and "RAG_LLM__BACKEND" in message and "'gpt5'" in message


def test_unknown_keys_are_rejected(tmp_path: Path) -> None:
    config = tmp_path / "rag.toml"
    config.write_text("[retrieval]\ntopk = 7\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="retrieval.topk"):
        load_settings(config, environ={})
    with pytest.raises(SettingsError, match="unknown section 'retreival'"):
        load_settings(environ={"RAG_RETREIVAL__TOP_K": "3"})


def test_missing_or_broken_config_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[llm\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(broken, environ={})


def test_config_file_named_by_rag_config_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"from RAG_CONFIG\) does not exist.*unset it"):
        load_settings(environ={"RAG_CONFIG": str(tmp_path / "nope.toml")})
    config = tmp_path / "team.toml"
    config.write_text("[retrieval]\ntop_k = 7\n", encoding="utf-8")
    assert load_settings(environ={"RAG_CONFIG": str(config)}).retrieval.top_k == 7
    # --config wins over RAG_CONFIG, and an empty RAG_CONFIG means the default ./rag.toml.
    assert load_settings(config, environ={"RAG_CONFIG": str(tmp_path / "nope.toml")}).retrieval.top_k == 7
    assert load_settings(environ={"RAG_CONFIG": ""}) == load_settings(environ={})


def test_token_vectors_on_by_default_and_off_from_the_environment() -> None:
    assert load_settings(environ={}).index.token_vectors is True
    assert load_settings(environ={"RAG_INDEX__TOKEN_VECTORS": "false"}).index.token_vectors is False


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("RAG_TOP_K", "RAG_RETRIEVAL__TOP_K"),
        ("RAG_INDEX_DIR", "RAG_INDEX__INDEX_DIR"),
        ("RAG_INDEX_EMBEDDING_MODEL", "RAG_INDEX__EMBEDDING_MODEL"),
        ("RAG_LLM_BACKEND", "RAG_LLM__BACKEND"),
    ],
)
def test_a_setting_with_one_underscore_is_refused_naming_the_variable_meant(name: str, meant: str) -> None:
    # Was ignored without a word: the setting silently kept its default.
    with pytest.raises(SettingsError, match=rf"{name} is not a setting.*Rename it {meant}"):
        load_settings(environ={name: "3"})


def test_other_rag_variables_without_two_underscores_are_left_alone() -> None:
    settings = load_settings(environ={"RAG_TEST_E5_MODEL": "/x", "RAG_SOMETHING": "1"})
    assert settings.retrieval.top_k == 5


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (".txt", (".txt",)),
        (".txt,.md", (".txt", ".md")),
        ("txt, PDF", (".txt", ".pdf")),
        ('[".txt", ".md"]', (".txt", ".md")),
    ],
)
def test_extensions_from_the_environment_are_a_comma_separated_list(raw: str, expected: tuple) -> None:
    settings = load_settings(environ={"RAG_INDEX__EXTENSIONS": raw}, config_file=None)
    assert settings.index.extensions == expected


@pytest.mark.parametrize("raw", [".exe", ".txt,.exe", "", 42])
def test_bad_extensions_name_the_supported_ones_without_python_syntax(raw: object) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(overrides={"index.extensions": raw}, environ={}, config_file=None)
    message = str(caught.value)
    assert "index.extensions" in message and "RAG_INDEX__EXTENSIONS" in message
    assert ".txt, .md" in message and "e.g. .txt,.md,.pdf" in message
    assert "valid tuple" not in message and "('" not in message
