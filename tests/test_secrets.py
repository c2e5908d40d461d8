"""Tests of secret masking: secret keys, secret environment values, trees, free text and command lines."""

from __future__ import annotations

import argparse
import copy
from collections import namedtuple

import pytest
from omegaconf import OmegaConf

from enhtrain.secrets import (
    MASK,
    is_secret_key,
    mask_argv,
    mask_secrets,
    mask_text,
    secret_values,
)

WANDB_KEY = "wandb-0123456789abcdef0123456789abcdef"
HF_TOKEN = "hf_FakeTokenValue42"


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", WANDB_KEY)
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)


def test_mask_is_ten_stars() -> None:
    assert MASK == "**********"


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "API_KEY",
        "apikey",
        "apiKey",
        "ApiKey",
        "wandb_api_key",
        "WANDB_API_KEY",
        "comet-api-key",
        "token",
        "access_token",
        "auth_token",
        "hfToken",
        "password",
        "db_password",
        "passwd",
        "secret",
        "client_secret",
        "clientSecret",
        "secret_key",
        "aws_secret_access_key",
        "private_key",
        "Authorization",
        "credentials",
        "experiment.loggers.comet.api_key",
        "--experiment.loggers.wandb.api_key",
    ],
)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "name",
        "lr",
        "key",
        "monkey",
        "keyboard",
        "tokenizer",
        "max_tokens",
        "num_tokens",
        "token_ids",
        "pad_token",
        "eos_token",
        "mask_token",
        "api_key_file",
        "password_file",
        "secret_name",
        "secrets_dir",
        "project",
    ],
)
def test_non_secret_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_secret_values_from_secret_named_variables() -> None:
    environ = {
        "WANDB_API_KEY": WANDB_KEY,
        "COMET_API_KEY": "  padded-comet-key\n",
        "HF_TOKEN": HF_TOKEN,
        "MY_SECRET_THING": "s3cr3t-value",
        "DB_PASSWORD": "hunter2hunter2",
        "SHORT_TOKEN": "abc",
        "EMPTY_API_KEY": "",
        "HOME": "/home/someone",
        "PATH": "/usr/local/bin:/usr/bin",
        "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5",
        "TOKENIZERS_PARALLELISM": "false-ish-value",
    }
    assert secret_values(environ) == {
        WANDB_KEY,
        "padded-comet-key",
        HF_TOKEN,
        "s3cr3t-value",
        "hunter2hunter2",
        "abc",
    }


def test_secret_values_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "token-from-the-environment")
    assert "token-from-the-environment" in secret_values()


@pytest.mark.usefixtures("secret_env")
def test_mask_secrets_masks_nested_keys_and_values_without_mutating() -> None:
    config = {
        "experiment": {
            "name": "digits",
            "loggers": {
                "wandb": {"project": "enhtrain", "api_key": "explicit-key-value", "offline": True},
                "comet": {"API_KEY": None, "token": "", "use_token": True},
            },
            "tags": ["baseline", WANDB_KEY, f"prefix-{HF_TOKEN}-suffix"],
        },
        "model": {"lr": 0.1, "hidden": [64, 32], "pad_token": "<pad>", "max_tokens": 512},
        "headers": {"Authorization": f"Bearer {HF_TOKEN}"},
        "url": f"https://example.org/?token={HF_TOKEN}",
        "clientSecret": 12345678,
    }
    original = copy.deepcopy(config)

    masked = mask_secrets(config)

    assert config == original
    assert masked["experiment"]["name"] == "digits"
    wandb = masked["experiment"]["loggers"]["wandb"]
    assert wandb == {"project": "enhtrain", "api_key": MASK, "offline": True}
    # Empty values and flags hold nothing secret.
    assert masked["experiment"]["loggers"]["comet"] == {"API_KEY": None, "token": "", "use_token": True}
    assert masked["experiment"]["tags"] == ["baseline", MASK, f"prefix-{MASK}-suffix"]
    assert masked["model"] == original["model"]
    assert masked["headers"] == {"Authorization": MASK}
    assert masked["url"] == f"https://example.org/?token={MASK}"
    assert masked["clientSecret"] == MASK
    assert WANDB_KEY not in repr(masked)
    assert HF_TOKEN not in repr(masked)


def test_mask_secrets_masks_every_leaf_under_a_secret_key() -> None:
    masked = mask_secrets({"secret": {"user": "me", "pass": "pw", "list": ["a", 1, None]}, "other": "a"})
    assert masked == {"secret": {"user": MASK, "pass": MASK, "list": [MASK, MASK, None]}, "other": "a"}


def test_mask_secrets_keeps_container_types_and_other_objects() -> None:
    point = namedtuple("point", "x y")
    marker = object()
    masked = mask_secrets({"pair": ("a", "b"), "point": point(1, 2), "obj": marker, "n": 3, "f": 0.5})
    assert masked["pair"] == ("a", "b")
    assert isinstance(masked["pair"], tuple)
    assert masked["point"] == point(1, 2)
    assert isinstance(masked["point"], point)
    assert masked["obj"] is marker
    assert masked["n"] == 3
    assert masked["f"] == 0.5


def test_mask_secrets_on_namespace_and_omegaconf() -> None:
    namespace = argparse.Namespace(api_key="namespace-key-1", lr=0.1)
    masked = mask_secrets(namespace)
    assert isinstance(masked, argparse.Namespace)
    assert vars(masked) == {"api_key": MASK, "lr": 0.1}
    assert namespace.api_key == "namespace-key-1"

    conf = OmegaConf.create({"wandb": {"api_key": "omegaconf-key-1", "tags": ["a", "b"]}})
    assert mask_secrets(conf) == {"wandb": {"api_key": MASK, "tags": ["a", "b"]}}


def test_mask_secrets_extra_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    config = {"note": "key is given-on-cli-123 here", "short": "abc", "list": ["given-on-cli-123"],
              "words": "abcd xabc abc_1", "sentence": "pw=abc, ok"}
    masked = mask_secrets(config, extra_values=["given-on-cli-123", "abc"])
    # A value shorter than six characters is masked where it stands alone, not inside longer words.
    assert masked == {"note": f"key is {MASK} here", "short": MASK, "list": [MASK],
                      "words": "abcd xabc abc_1", "sentence": f"pw={MASK}, ok"}


def test_short_secret_from_the_environment_is_masked_whatever_its_length(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWORD", "hu2")
    masked = mask_text("connect with hu2 to db; hu23 is another word")
    assert masked == f"connect with {MASK} to db; hu23 is another word"


def test_mask_secrets_masks_the_longest_secret_whole() -> None:
    masked = mask_secrets({"a": "xx-abcdef123456-yy"}, extra_values=["abcdef", "abcdef123456"])
    assert masked == {"a": f"xx-{MASK}-yy"}


@pytest.mark.usefixtures("secret_env")
def test_mask_text_masks_values_and_secret_assignments() -> None:
    text = "\n".join(
        [
            f"starting with {WANDB_KEY} and again {WANDB_KEY}",
            "experiment:",
            "  api_key: plain-yaml-key",
            '  "token": "json-token-value",',
            "  password='quoted-pw-1'",
            "  api_key: null",
            "  token:",
            "  pad_token: <pad>",
            "  max_tokens: 512",
            f"  url: https://example.org/?x={HF_TOKEN}",
        ]
    )
    masked = mask_text(text)
    assert masked.splitlines() == [
        f"starting with {MASK} and again {MASK}",
        "experiment:",
        f"  api_key: {MASK}",
        f'  "token": "{MASK}",',
        f"  password='{MASK}'",
        "  api_key: null",
        "  token:",
        "  pad_token: <pad>",
        "  max_tokens: 512",
        f"  url: https://example.org/?x={MASK}",
    ]


def test_mask_text_leaves_text_without_secrets_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    text = "epoch 3: val/loss=0.25, lr=0.001 at 12:30"
    assert mask_text(text) == text
    assert mask_text("my value my-extra-secret", extra_values=["my-extra-secret"]) == f"my value {MASK}"


@pytest.mark.usefixtures("secret_env")
def test_mask_argv() -> None:
    argv = [
        "train.py",
        "--experiment.loggers.comet.api_key",
        "cli-comet-key-1",
        "--trainer.max_epochs",
        "3",
        "--experiment.loggers.wandb.token=cli-token-1",
        "--note",
        f"key={WANDB_KEY}",
        "--password=",
    ]
    original = list(argv)
    assert mask_argv(argv) == [
        "train.py",
        "--experiment.loggers.comet.api_key",
        MASK,
        "--trainer.max_epochs",
        "3",
        f"--experiment.loggers.wandb.token={MASK}",
        "--note",
        f"key={MASK}",
        "--password=",
    ]
    assert argv == original


def test_masking_long_text_takes_linear_time() -> None:
    import time

    start = time.perf_counter()
    for text in ("a" * 200_000, "a-" * 100_000, "x." * 100_000):
        assert mask_text(text) == text
    assert time.perf_counter() - start < 2.0
    assert mask_text("run --wandb_api_key=abcdefgh") == "run --wandb_api_key=**********"
