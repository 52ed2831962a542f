from application import Principal


def test_command_then_projection_on_backend(container):
    app = container.app
    user_id, _ = app.register_user("smoke@example.com", "correct horse battery", "Smoke", "req-1")
    org = app.create_organisation(Principal.user(user_id), "Smoke Org", "req-2")
    container.supervisor.catch_up()
    assert container.memberships.orgs_of(user_id)[0]["org_id"] == str(org.id)
