"""Address book jobs under serve: POST /v1/migrations with kind "contacts", GET progress,
DELETE to cancel.

serve runs with [api] tokens and [migrate] carddav_destination pointing at a real Radicale 3;
the source is another Radicale. A job copies every card byte for byte and a second job adds
nothing; a job cancelled mid-run and restarted by its id ends complete; a wrong password ends
the job with the error and what to do; and after the jobs neither the source address, the
source user name nor any password is in the state dir, the log or the database.
"""

import os

import pytest

from pwtest import net
from pwtest.radicale import Radicale
from pwtest.secrets import any_file_holds, secrets_found
from test_migrate_api import call, wait_job
from test_migrate_contacts import CARDS, WORK_CARDS

SRC_USER, SRC_PW = "oldalice", "s3cret-Old-Pass"
DST_USER, DST_PW = "bob", "n3w-Pass-Dst"
TOKEN = "tok-migrate"
ALL = len(CARDS) + len(WORK_CARDS)


@pytest.fixture
def servers(workdir):
    src = Radicale(workdir, {SRC_USER: SRC_PW}, encryption="plain", name="src")
    dst = Radicale(workdir, {DST_USER: DST_PW}, encryption="plain", name="dst")
    yield src, dst
    src.stop()
    dst.stop()


def fill(src):
    src.make_book(SRC_USER, "friends", "Freunde")
    src.make_book(SRC_USER, "work", "Work")
    for name, card in CARDS.items():
        src.put(SRC_USER, "friends", name, card.encode())
    for name, card in WORK_CARDS.items():
        src.put(SRC_USER, "work", name, card.encode())


def serve(make_relay, dst, **extra):
    opts = {"api_tokens": TOKEN, "api_rate_limit": "10000",
            "migrate_carddav_destination": dst.url, "migrate_allow_private": "on"}
    opts.update(extra)
    return make_relay(**opts)


def body(src, src_pw=SRC_PW, dst_pw=DST_PW, **more):
    b = {"kind": "contacts", "source": src.url, "source_user": SRC_USER,
         "source_password": src_pw, "destination_user": DST_USER,
         "destination_password": dst_pw}
    b.update(more)
    return b


def same_cards(src, dst, books):
    for book in books:
        s, d = src.cards(SRC_USER, book), dst.cards(DST_USER, book)
        assert sorted(s) == sorted(d), book
        for name in s:
            assert s[name] == d[name], (book, name)


def test_contacts_job_copies_every_card_and_a_second_adds_nothing(servers, make_relay):
    src, dst = servers
    fill(src)
    r = serve(make_relay, dst)
    code, j = call(r, "POST", "/v1/migrations", body(src))
    assert code == 202 and j["state"] == "running", j
    done = wait_job(r, j["id"])
    assert done["state"] == "done", done
    assert done["kind"] == "contacts"
    assert done["folders_total"] == done["folders_done"] == 2
    assert done["messages_done"] == done["messages_total"] == ALL
    assert done["summary"]["messages_copied"] == ALL and done["failed"] == 0
    assert {f["folder"]: f["messages"] for f in done["folders"]} == {
        "friends": len(CARDS), "work": len(WORK_CARDS)}
    assert dst.books(DST_USER) == ["friends", "work"]
    same_cards(src, dst, ("friends", "work"))
    # again, through the preset with the URL given apart: nothing is added
    code, j2 = call(r, "POST", "/v1/migrations",
                    body(src, source="carddav", source_url=src.url))
    assert code == 202, j2
    again = wait_job(r, j2["id"])
    assert again["state"] == "done", again
    assert again["summary"]["messages_copied"] == 0 and again["messages_done"] == 0
    assert sum(f["messages"] for f in again["folders"]) == ALL     # all already there
    same_cards(src, dst, ("friends", "work"))
    # a card added at the source since is the only one a third job copies
    src.put(SRC_USER, "work", "new.vcf",
            b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:new\r\nFN:New\r\nEND:VCARD\r\n")
    code, j3 = call(r, "POST", "/v1/migrations", body(src))
    third = wait_job(r, j3["id"])
    assert third["state"] == "done" and third["summary"]["messages_copied"] == 1, third
    same_cards(src, dst, ("friends", "work"))
    code, lst = call(r, "GET", "/v1/migrations?user=%s" % DST_USER)
    assert [x["kind"] for x in lst["jobs"]] == ["contacts"] * 3


def test_contacts_job_wrong_password_ends_with_advice(servers, make_relay):
    src, dst = servers
    fill(src)
    r = serve(make_relay, dst)
    code, j = call(r, "POST", "/v1/migrations", body(src, src_pw="not-the-password"))
    assert code == 202, j
    failed = wait_job(r, j["id"])
    assert failed["state"] == "failed", failed
    e = failed["error"]
    assert "old address book" in e and "user name or password" in e, e
    assert "What to do" in e and "app password" in e, e
    # the destination's password wrong: said of the new address book
    code, j = call(r, "POST", "/v1/migrations", body(src, dst_pw="wrong"))
    failed = wait_job(r, j["id"])
    assert failed["state"] == "failed", failed
    assert "new address book" in failed["error"] and "What to do" in failed["error"]
    assert dst.books(DST_USER) == []
    # control: the right passwords work
    code, j = call(r, "POST", "/v1/migrations", body(src))
    assert wait_job(r, j["id"])["state"] == "done"


def test_contacts_body_checks(servers, make_relay):
    src, dst = servers
    r = serve(make_relay, dst)
    for bad, word in ((body(src, source="vcard"), "source"),
                      (body(src, source="carddav"), "source_url"),
                      (body(src, source="ftp://x/"), "source"),
                      (body(src, source_host="h:1"), "mail jobs"),
                      (dict(body(src), source_user=None), "source_user")):
        bad = {k: v for k, v in bad.items() if v is not None}
        code, e = call(r, "POST", "/v1/migrations", bad)
        assert code == 400 and word in e["error"], (bad, e)
        assert SRC_PW not in e["error"] and DST_PW not in e["error"]
    # a contacts job cannot be restarted as a mail job (mail's destination is set for this)
    r3 = serve(make_relay, dst, migrate_destination="imaps://127.0.0.1:1")
    code, j = call(r3, "POST", "/v1/migrations", body(src, src_pw="wrong"))
    assert wait_job(r3, j["id"])["state"] == "failed"
    mail = {"kind": "mail", "source": "imaps://127.0.0.1:2", "source_user": "u",
            "source_password": "p", "destination_user": DST_USER,
            "destination_password": "q", "job": j["id"]}
    code, e = call(r3, "POST", "/v1/migrations", mail)
    assert code == 409 and "another kind" in e["error"], e
    code, again = call(r3, "POST", "/v1/migrations", body(src, job=j["id"]))   # control
    assert code == 202 and again["id"] == j["id"], again
    wait_job(r3, j["id"])
    # a node without [migrate] carddav_destination cannot run it
    r2 = serve(make_relay, dst, migrate_carddav_destination="")
    code, e = call(r2, "POST", "/v1/migrations", body(src))
    assert code == 400 and "carddav_destination" in e["error"], e


def fill_many(src, n):
    src.make_book(SRC_USER, "big", "Big")
    for i in range(n):
        src.put(SRC_USER, "big", "c%04d.vcf" % i,
                ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:c%04d\r\nFN:Person %d\r\n"
                 "EMAIL:p%d@example.org\r\nEND:VCARD\r\n" % (i, i, i)).encode())


def test_contacts_job_cancel_restart_and_interrupted(servers, make_relay):
    src, dst = servers
    n = 600
    fill_many(src, n)
    r = serve(make_relay, dst)
    code, j = call(r, "POST", "/v1/migrations", body(src))
    assert code == 202, j
    job = j["id"]
    wait_job(r, job, pred=lambda x: x["messages_done"] > 0)
    code, c = call(r, "DELETE", "/v1/migrations/%d" % job)
    assert code == 202 and c["state"] == "cancelling"
    cancelled = wait_job(r, job)
    assert cancelled["state"] == "cancelled", cancelled
    assert 0 < cancelled["messages_done"] < n, cancelled
    assert len(dst.cards(DST_USER, "big")) < n          # control: really cut short
    # serve stopping mid-run: the job ends interrupted, and a POST naming it finishes it
    code, again = call(r, "POST", "/v1/migrations", body(src, job=job))
    assert code == 202 and again["id"] == job, again
    wait_job(r, job, pred=lambda x: x["messages_done"] > 0)
    r.stop()
    r.start()
    code, cut = call(r, "GET", "/v1/migrations/%d" % job)
    assert cut["state"] == "interrupted", cut
    assert "event=migration_end job=%d kind=contacts state=interrupted" % job in r.log()
    code, again = call(r, "POST", "/v1/migrations", body(src, job=job))
    assert code == 202, again
    done = wait_job(r, job)
    assert done["state"] == "done", done
    assert done["folders"][0]["messages"] == n
    same_cards(src, dst, ("big",))


def test_contacts_job_keeps_no_source_address_user_or_password(servers, make_relay):
    src, dst = servers
    fill(src)
    r = serve(make_relay, dst)
    code, j = call(r, "POST", "/v1/migrations", body(src))
    assert wait_job(r, j["id"])["state"] == "done"
    code, j = call(r, "POST", "/v1/migrations", body(src, src_pw="Wr0ng-Secret!"))
    assert wait_job(r, j["id"])["state"] == "failed"
    # a source that cannot be reached: curl's error names the address; the record does not
    closed = net.free_port()
    code, j = call(r, "POST", "/v1/migrations",
                   body(src, source="http://127.0.0.1:%d/dav/" % closed))
    gone = wait_job(r, j["id"])
    assert gone["state"] == "failed" and "What to do" in gone["error"], gone
    assert "127.0.0.1" not in gone["error"] and "old provider's server" in gone["error"], gone
    r.stop()
    secrets = (SRC_PW, DST_PW, "Wr0ng-Secret!", SRC_USER, src.url,
               "127.0.0.1:%d" % src.port, "127.0.0.1:%d" % closed)
    found = secrets_found(r.dir, secrets, skip=(r.conf_path,))
    assert not found, found
    # control: the jobs are recorded under the destination user, and the log has them
    assert any_file_holds(r.state_dir, DST_USER)
    assert "kind=contacts state=done" in r.log()
    # control: the grep finds a secret where there is one
    with open(os.path.join(r.state_dir, "control"), "w") as f:
        f.write(SRC_USER)
    assert any_file_holds(r.state_dir, SRC_USER)


def test_contacts_job_from_graph_with_a_token(servers, make_relay):
    """The Outlook path: a bearer token, Graph pages (a scripted server), vCard 4.0 cards
    into the book "contacts"; the contact with nothing in it makes the job partial."""
    from test_migrate_contacts import GRAPH_TOKEN, GraphServer, graph_contact
    _, dst = servers
    g = GraphServer([graph_contact(i) for i in range(8)] + [{"id": "nothing"}])
    try:
        r = serve(make_relay, dst)
        b = {"kind": "contacts", "source": "outlook",
             "source_url": g.url + "v1.0/me/contacts?$top=3", "source_token": GRAPH_TOKEN,
             "destination_user": DST_USER, "destination_password": DST_PW}
        code, j = call(r, "POST", "/v1/migrations", b)
        assert code == 202, j
        done = wait_job(r, j["id"])
        assert done["state"] == "partial", done
        assert done["messages_done"] == 8 and done["failed"] == 1, done
        assert [f["folder"] for f in done["folders"]] == ["contacts"]
        assert len(dst.cards(DST_USER, "contacts")) == 8
        # an expired token: the error says so, and what to do
        code, j = call(r, "POST", "/v1/migrations", dict(b, source_token="expired"))
        failed = wait_job(r, j["id"])
        assert failed["state"] == "failed" and "refused the token" in failed["error"], failed
        assert "What to do" in failed["error"]
        # a password where Graph takes a token is refused before anything runs
        nob = {k: v for k, v in b.items() if k != "source_token"}
        code, e = call(r, "POST", "/v1/migrations", dict(nob, source_password="pw"))
        assert code == 400 and "token" in e["error"], e
    finally:
        g.stop()
