from kaanha.worker.runner import drain
from tests.conftest import API


async def test_whole_loop(client, tenant, runtime):
    r = await client.get(f"{API}/status", headers=tenant.headers)
    assert r.status_code == 200, r.text
    print(r.json())
    r = await client.post(
        f"{API}/sandbox/inbound",
        headers=tenant.headers,
        json={"from": "+919876543210", "name": "Asha", "text": "Hi"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        f"{API}/send", headers=tenant.headers, json={"to": "+919876543210", "type": "text", "text": "Hello"}
    )
    assert r.status_code == 201, r.text
    print(r.json())
    await drain(runtime)
    r = await client.get(f"{API}/messages/{r.json()['id']}", headers=tenant.headers)
    print(r.json())
    r = await client.get(f"{API}/chats", headers=tenant.headers)
    print(r.json())
    r = await client.get(f"{API}/contacts?search=asha", headers=tenant.headers)
    print(r.json())
    assert r.json()["pagination"]["total"] == 1
