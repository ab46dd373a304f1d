"""The login page: anyone with an account logs in there (the admin's refuses non-staff),
lands on the pipeline list, and logs out again."""

from django.test import Client
import pytest

PASSWORD = "pw-for-tests-1"  # tests.factories.create_user's


def test_a_user_who_is_not_staff_logs_in_and_lands_on_the_pipeline_list(alice):
    client = Client()
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="username"' in html and 'name="password"' in html
    assert 'href="/admin/' not in html  # nothing there for a visitor

    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD}, follow=True)
    assert response.redirect_chain == [("/pipelines/", 302)]
    html = response.content.decode()
    assert "<h1>Pipelines</h1>" in html
    assert "alice" in html and "Log out" in html
    assert 'href="/admin/"' not in html  # no Admin link for a user it would refuse


def test_a_wrong_password_is_refused_with_a_message(alice):
    client = Client()
    response = client.post("/accounts/login/", {"username": "alice", "password": "not-it"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'role="alert"' in html
    assert "Please enter a correct username and password" in html
    assert 'value="alice"' in html  # the username stays filled in
    assert client.get("/pipelines/").status_code == 302


def test_login_returns_to_the_page_that_asked_for_it(alice):
    client = Client()
    response = client.get("/datasets/")
    assert response["Location"] == "/accounts/login/?next=/datasets/"
    response = client.post(
        "/accounts/login/?next=/datasets/", {"username": "alice", "password": PASSWORD, "next": "/datasets/"}
    )
    assert response["Location"] == "/datasets/"


def test_a_login_never_redirects_to_another_site(alice):
    response = Client().post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD, "next": "https://evil.example/"}
    )
    assert response["Location"] == "/pipelines/"


def test_log_out_ends_the_session(alice):
    client = Client()
    client.force_login(alice)
    response = client.post("/accounts/logout/")
    assert response["Location"] == "/accounts/login/"
    assert client.get("/pipelines/")["Location"] == "/accounts/login/?next=/pipelines/"


def test_staff_see_the_admin_link(staff):
    client = Client()
    client.force_login(staff)
    assert 'href="/admin/"' in client.get("/pipelines/").content.decode()


@pytest.mark.parametrize("path", ["/pipelines/", "/templates/", "/datasets/"])
def test_pages_send_visitors_to_the_login_page(db, path):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"
