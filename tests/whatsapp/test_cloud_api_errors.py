"""Meta's error codes decide a send's fate: throttling and outages retry, refusals fail with advice."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kaanha.whatsapp.cloud_api.client import GraphError, GraphUnreachable
from kaanha.whatsapp.cloud_api.errors import provider_error


def graph_error(code: int, *, http_status: int = 400, details: str | None = None) -> GraphError:
    return GraphError(code=code, message=f"(#{code}) Meta's words", details=details, http_status=http_status)


@pytest.mark.parametrize("code", [4, 80007, 130429, 131056, 131057])
def test_throttling_is_retried(code):
    error = provider_error(graph_error(code, http_status=429))
    assert error.retryable
    assert error.code == code


@pytest.mark.parametrize("code", [131047, 131026, 131049, 131050, 132000, 132001, 100, 190, 131051, 368, 10, 250])
def test_refusals_fail_with_metas_code_and_a_readable_explanation(code):
    error = provider_error(graph_error(code, details="what Meta said in detail"))
    assert not error.retryable
    assert error.code == code
    assert error.message == "what Meta said in detail"
    assert error.explanation
    assert error.explanation != error.message


def test_a_server_error_is_retried_whatever_its_code():
    error = provider_error(graph_error(131000, http_status=500))
    assert error.retryable
    assert provider_error(graph_error(12345, http_status=503)).retryable


def test_an_unknown_code_fails_with_metas_own_message():
    error = provider_error(graph_error(999999, details="a brand new refusal"))
    assert not error.retryable
    assert "a brand new refusal" in error.explanation


def test_no_answer_is_retried():
    assert provider_error(GraphUnreachable("connection refused", may_have_arrived=False)).retryable


def test_the_pair_rate_limit_backs_off_four_to_the_x_seconds():
    delays = [provider_error(graph_error(131056), pair_limit_hits=hits).retry_after for hits in range(4)]
    assert delays == [timedelta(seconds=1), timedelta(seconds=4), timedelta(seconds=16), timedelta(seconds=64)]


def test_the_access_token_goes_only_to_metas_hosts_and_the_configured_graph_host():
    import httpx

    from kaanha.whatsapp.cloud_api.client import GraphClient

    client = GraphClient(httpx.AsyncClient(), base_url="http://127.0.0.1:8900", version="v24.0", access_token="t")
    assert client.may_receive_token("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1")
    assert client.may_receive_token("http://127.0.0.1:8900/_fake/media/1/download")
    assert not client.may_receive_token("https://attacker.example/steal")
    assert not client.may_receive_token("https://fbsbx.com.attacker.example/x")
    assert not client.may_receive_token("http://169.254.169.254/latest/meta-data/")
