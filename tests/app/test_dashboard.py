"""The dashboard's pages and actions over a real store (FastAPI's test client, no browser): the
numbers each page shows are the registry's, and writes need the token, a session and its CSRF
token, and follow the CLI's promotion rule."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from helpers import binding_for, put_report

from embedops.app.dashboard import UiAuth, dashboard_router
from embedops.app.dashboard.charts import histogram, line_chart


def client_for(reg, token: str | None = None) -> TestClient:
    app = FastAPI()
    app.include_router(dashboard_router(reg, auth=UiAuth(token)))
    return TestClient(app, base_url="http://127.0.0.1:8000")


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]*)"', page).group(1)


def signed_in(reg, token: str = "t0ken") -> TestClient:
    c = client_for(reg, token)
    assert c.post("/ui/login", data={"token": token}, follow_redirects=False).status_code == 303
    return c


def test_overview_shows_each_alias_as_the_registry_has_it(dashboard_store):
    s = dashboard_store.live
    page = client_for(s.reg).get("/").text
    head = s.reg.aliases.get("production")
    card = page[page.index('<section class="card" data-alias="production">'):]
    assert f'data-field="index">{head.value}<' in card and head.value == s.b.index_id
    assert f'data-field="model">{s.b.model_ref}<' in card
    assert f"by {head.actor}" in card and "promote" in card
    mean = sum(dashboard_store.overlaps) / 3
    assert f"{mean:.2f} overlap@k over 3 queries, last hour" in card
    assert "read-only (no EMBEDOPS_UI_TOKEN)" in page and "Roll back" not in page  # no actions offered


def test_overview_warns_of_an_override_and_an_automatic_rollback(live_store):
    s = live_store
    page = client_for(s.reg).get("/").text
    assert 'role="alert"' in page and "promoted by override" in page and "first index" in page
    s.reg.promote(s.b.index_id, override=True, reason="hotfix")
    s.reg.rollback(by="serve-1:4242", automatic=True, reason="error rate 0.4 above 0.05")
    page = client_for(s.reg).get("/").text
    assert "switched automatically by serve-1:4242: error rate 0.4 above 0.05" in page
    assert 'class="band bad"' in page


def test_alias_timeline_lists_every_switch_with_actor_and_reason(dashboard_store):
    s = dashboard_store.live
    s.reg.start_canary(s.d.index_id, percent=20, override=True, reason="try d")
    s.reg.abort_canary(reason="enough", by="alice")
    page = client_for(s.reg).get("/ui/aliases/production").text
    records = s.reg.aliases.history("production")
    assert re.findall(r'<tr data-seq="(\d+)">', page) == [str(r.seq) for r in reversed(records)]
    assert "enough" in page and "alice" in page and "try d" in page and "<svg" in page
    assert client_for(s.reg).get("/ui/aliases/nowhere").status_code == 404


def test_models_page_draws_lineage_and_model_page_its_training(live_store):
    s = live_store
    reg = s.reg
    page = client_for(reg).get("/ui/models").text
    assert "tiny@1" in page and "tiny@2" in page and 'class="edge"' in page  # tiny@2's parent line
    assert client_for(reg).get("/ui/models/tiny@2").text.count("fine-tuned from") == 1
    assert client_for(reg).get("/ui/models/tiny@9").status_code == 404


def test_model_page_says_which_alphas_the_rails_refused_or_did_not_score(live_store):
    reg = live_store.reg
    sweep = [{"alpha": 1.0, "domain_ndcg@10": 80.0, "general_spearman": 88.0, "general_retrieval_ndcg@10": 54.1,
              "allowed": False},
             {"alpha": 0.9, "domain_ndcg@10": 79.5, "general_spearman": 88.4, "general_retrieval_ndcg@10": 55.2,
              "allowed": True},
             {"alpha": 0.8, "domain_ndcg@10": 78.0, "general_spearman": None, "general_retrieval_ndcg@10": None,
              "allowed": None},
             {"alpha": 0.7, "domain_ndcg@10": 77.0, "general_spearman": 88.9}]  # a version from before the rails
    made = reg.models.register("tiny", reg.models.artifact_path(reg.models.get("tiny@1")), parent="tiny@1",
                               metrics={"alpha": 0.9, "alpha_sweep": sweep})
    page = client_for(reg).get(f"/ui/models/{made.ref}").text
    rows = re.findall(r"<tr(?: class=\"pass\")?><td class=\"num\">([\d.]+)</td>.*?<td>([^<]*)</td></tr>",
                      page[page.index('id="sweep"'):], flags=re.S)
    assert rows == [("1.0", "refused"), ("0.9", "within bounds"), ("0.8", "not scored: dev below the best allowed"),
                    ("0.7", "-")]
    assert '<tr class="pass"><td class="num">0.9<' in page and "55.20" in page


def test_indexes_page_shows_documents_status_and_verdicts(dashboard_store):
    s = dashboard_store.live
    page = client_for(s.reg).get("/ui/indexes").text
    for idx in (s.a, s.b, s.d):
        row = page[page.index(f'data-index="{idx.index_id}"'):]
        assert f'data-field="docs">{idx.doc_count}<' in row[:2000]
        assert 'data-field="settings">float32 / exact (auto from 100000) / nprobes 20, refine 5<' in row[:2000]
    row_b = page[page.index(f'data-index="{s.b.index_id}"'):]
    assert f'href="/ui/reports/{dashboard_store.report.report_id}">pass<' in row_b.split("</tr>")[0]


def test_report_page_shows_gates_plots_from_stored_evidence_and_lost_queries(dashboard_store):
    s, report = dashboard_store.live, dashboard_store.report
    page = client_for(s.reg).get(f"/ui/reports/{report.report_id}").text
    assert 'id="verdict">PASS<' in page
    assert re.findall(r'<tr data-gate="([a-z_]+)">', page) == [g["name"] for g in report.gates]
    assert "mean ndcg@10 lift +4.20 points" in page and ">4.2<" in page
    assert page.count('<svg class="chart"') == 4  # recall@k, delta histogram, slices, general bars
    assert 'data-slice="cluster 2 ~ q7"' in page and "[-1.50, +6.00]" in page and "Bonferroni over 2 slices" in page
    assert "cert renewal on the edge proxy" in page and "-12.5" in page
    listing = client_for(s.reg).get("/ui/reports").text
    assert report.report_id in listing
    assert client_for(s.reg).get("/ui/reports/000000000000").status_code == 404


def test_live_page_shows_agreement_and_the_biggest_disagreements(dashboard_store):
    s = dashboard_store.live
    page = client_for(s.reg).get("/ui/live").text
    assert f'data-field="overlap">{sum(dashboard_store.overlaps) / 3:.2f}<' in page
    assert page.index("query 2") < page.index("query 0")  # lowest overlap first
    assert client_for(s.reg).get("/ui/live?since=soon").status_code == 422


def test_writes_are_refused_without_the_token_a_session_or_the_csrf_token(dashboard_store):
    s = dashboard_store.live
    before = s.reg.aliases.get("production")
    read_only = client_for(s.reg)
    r = read_only.post("/ui/actions/rollback", data={"alias": "production"})
    assert r.status_code == 403 and "read-only" in r.text
    assert read_only.post("/ui/login", data={"token": "anything"}).status_code == 403

    c = client_for(s.reg, "t0ken")
    assert c.post("/ui/login", data={"token": "wrong"}).status_code == 403
    assert c.post("/ui/actions/rollback", data={"alias": "production"}).status_code == 401  # no session
    c = signed_in(s.reg)
    assert c.post("/ui/actions/rollback", data={"alias": "production", "csrf": "0" * 64}).status_code == 403
    csrf = csrf_of(c.get("/ui/confirm/rollback?alias=production").text)
    r = c.post("/ui/actions/rollback", data={"alias": "production", "csrf": csrf},
               headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-site" in r.text
    assert s.reg.aliases.get("production") == before  # nothing moved
    bearer = client_for(s.reg, "t0ken").post("/ui/actions/rollback", data={"alias": "production"},
                                              headers={"authorization": "Bearer wrong"})
    assert bearer.status_code == 403


def test_a_foreign_host_header_gets_400_so_a_rebinding_page_cannot_read_the_dashboard(dashboard_store):
    s = dashboard_store.live
    c = client_for(s.reg)
    assert c.get("/", headers={"host": "evil.example"}).status_code == 400
    r = c.get(f"/ui/reports/{dashboard_store.report.report_id}", headers={"host": "evil.example:8000"})
    assert r.status_code == 400 and "--allowed-host" in r.text and "cert renewal" not in r.text
    assert c.get("/", headers={"host": "localhost:8000"}).status_code == 200
    assert c.get("/", headers={"host": "[::1]:8000"}).status_code == 200
    app = FastAPI()
    app.include_router(dashboard_router(s.reg, allowed_hosts=("127.0.0.1", "search.internal")))
    assert TestClient(app, base_url="http://search.internal").get("/").status_code == 200


def test_malformed_or_non_ascii_cookies_and_csrf_values_are_refused_not_errors(dashboard_store):
    s = dashboard_store.live
    c = client_for(s.reg, "t0ken")
    for cookie in ("é.1.x", "a.b", "a.é.c", "..", "x" * 5000, "a.99999999999999999999.sig", "a.١٢.sig"):
        raw = {"cookie": f"embedops_ui={cookie}".encode("utf-8")}  # raw bytes, as a hostile client sends them
        assert c.post("/ui/actions/rollback", data={"alias": "production"}, headers=raw).status_code == 401, cookie
        assert c.get("/", headers=raw).status_code == 200
    c = signed_in(s.reg)
    for csrf in ("é" * 64, "\u2603", ""):
        assert c.post("/ui/actions/rollback", data={"alias": "production", "csrf": csrf}).status_code == 403
    assert client_for(s.reg, "t0ken").post("/ui/login", data={"token": "tök€n"}).status_code == 403
    r = client_for(s.reg, "t0ken").post("/ui/actions/rollback", headers={"authorization": "Bearer tök€n".encode()})
    assert r.status_code == 403


def test_sessions_expire_and_a_new_token_revokes_them(dashboard_store):
    s = dashboard_store.live
    now = [1_000_000.0]

    def client(token, **kw):
        app = FastAPI()
        app.include_router(dashboard_router(s.reg, auth=UiAuth(token, clock=lambda: now[0], **kw)))
        return TestClient(app, base_url="https://127.0.0.1")

    c = client("t0ken", session_ttl=3600)
    login = c.post("/ui/login", data={"token": "t0ken"}, follow_redirects=False)
    cookie = login.headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "Max-Age=3600" in cookie  # served over HTTPS
    assert csrf_of(c.get("/ui/confirm/rollback?alias=production").text)  # signed in: the form has a token
    now[0] += 3599
    assert c.get("/ui/confirm/rollback?alias=production").status_code == 200
    now[0] += 2  # past the session's hour
    assert c.get("/ui/confirm/rollback?alias=production").status_code == 403
    assert c.post("/ui/actions/rollback", data={"alias": "production"}).status_code == 401
    now[0] -= 2
    other = client("new-t0ken", session_ttl=3600)  # the server restarted with another token
    other.cookies.set("embedops_ui", c.cookies.get("embedops_ui"))
    assert other.post("/ui/actions/rollback", data={"alias": "production"}).status_code == 401
    plain = client_for(s.reg, "t0ken").post("/ui/login", data={"token": "t0ken"}, follow_redirects=False)
    assert "Secure" not in plain.headers["set-cookie"]  # plain HTTP on loopback


def test_a_signed_in_rollback_and_repromotion_are_audited_as_the_dashboard(dashboard_store):
    s = dashboard_store.live
    c = signed_in(s.reg)
    confirm = c.get("/ui/confirm/rollback?alias=production").text
    assert f"production will point at {s.a.index_id} instead of {s.b.index_id}" in confirm
    r = c.post("/ui/actions/rollback", data={"alias": "production", "expect": s.b.index_id, "csrf": csrf_of(confirm),
                                             "reason": "bad answers"})
    assert r.status_code == 200 and f"production now points at {s.a.index_id}" in r.text
    head = s.reg.aliases.get("production")
    assert head.action == "rollback" and head.actor == "dashboard (testclient)" and head.reason == "bad answers"

    confirm = c.get(f"/ui/confirm/promote?alias=production&index_id={s.b.index_id}").text
    r = c.post("/ui/actions/promote", data={"alias": "production", "index_id": s.b.index_id, "expect": s.a.index_id,
                                            "csrf": csrf_of(confirm)})
    assert r.status_code == 200, r.text
    head = s.reg.aliases.get("production")
    assert head.value == s.b.index_id and head.report_id == dashboard_store.report.report_id
    assert head.actor == "dashboard (testclient)" and not head.override


def test_a_promotion_without_a_passing_report_is_refused_and_a_stale_form_conflicts(dashboard_store):
    s = dashboard_store.live
    c = signed_in(s.reg)
    csrf = csrf_of(c.get("/").text)
    r = c.post("/ui/actions/promote", data={"alias": "production", "index_id": s.d.index_id, "csrf": csrf})
    assert r.status_code == 409 and "report" in r.text
    put_report(s.reg, binding_for(s.reg, s.d), verdict="fail",
               gates=[{"name": "domain", "status": "fail", "reason": "lost recall"}])
    r = c.post("/ui/actions/promote", data={"alias": "production", "index_id": s.d.index_id, "csrf": csrf})
    assert r.status_code == 409
    r = c.post("/ui/actions/rollback", data={"alias": "production", "expect": s.a.index_id, "csrf": csrf})
    assert r.status_code == 409 and "not the expected" in r.text  # the page showed another value
    assert s.reg.aliases.current("production") == s.b.index_id


def test_canary_abort_from_the_dashboard(live_store):
    s = live_store
    s.reg.start_canary(s.d.index_id, percent=25, override=True, reason="try it")
    c = signed_in(s.reg)
    confirm = c.get("/ui/confirm/canary-abort?alias=production").text
    assert f"{s.d.index_id} stops answering 25% of the searches of production" in confirm
    r = c.post("/ui/actions/canary-abort", data={"alias": "production", "expect_canary": s.d.index_id,
                                                 "csrf": csrf_of(confirm)})
    assert r.status_code == 200
    head = s.reg.aliases.get("production")
    assert head.canary is None and head.actor == "dashboard (testclient)"


@pytest.mark.parametrize("values", [[1.0], [-2.0, -2.0, 3.0]])
def test_charts_are_inline_svg_with_their_values_in_titles(values):
    svg = histogram(values, x_label="change")
    assert svg.startswith("<svg") and "<title>" in svg and svg.count("<rect") >= 1
    line = line_chart({"a": [(1, 2.0), (10, 3.0)]}, x_label="k", y_label="recall", log_x=True)
    assert "<title>a: 10 -> 3</title>" in line


def test_a_long_timeline_pages_by_100_records(live_store):
    s = live_store
    s.reg.promote(s.b.index_id, override=True, reason="b")
    for _ in range(110):  # each rollback swaps a and b
        s.reg.rollback(reason="flip")
    c = client_for(s.reg)
    page = c.get("/ui/aliases/production").text
    seqs = [int(x) for x in re.findall(r'<tr data-seq="(\d+)">', page)]
    assert seqs == list(range(112, 12, -1)) and "Records 13 to 112 of 112" in page
    older = re.search(r'href="(/ui/aliases/production\?before=13)" id="older"', page).group(1)
    seqs = [int(x) for x in re.findall(r'<tr data-seq="(\d+)">', c.get(older).text)]
    assert seqs == list(range(12, 0, -1))
