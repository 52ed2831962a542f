"""A batch that fails midway leaves neither rows nor the position advanced."""
import pytest
from sqlalchemy import func, select

from application import Principal
from projections import tracking
from projections.catalogue import Catalogue, prompts
from projections.catchup import catch_up, catch_up_once
from domain.prompt import Prompt


class Boom(RuntimeError):
    pass


class FaultyCatalogue(Catalogue):
    """Fails on the 3rd prompt creation, after the earlier events of the batch were folded AND
    written (each event is folded and flushed on its own, in the batch's transaction)."""

    def __init__(self, engine):
        super().__init__(engine)
        self.created = 0

    def fold(self, conn, batch):
        for env in batch:
            if isinstance(env.event, Prompt.Created):
                self.created += 1
                if self.created == 3:
                    with conn.begin_nested():  # the earlier prompts are in the transaction
                        assert conn.execute(select(func.count()).select_from(prompts)).scalar() == 2
                    raise Boom("disk full")
            unit = self.unit()
            unit.fold(conn, [env])
            unit.flush(conn)


def test_failed_batch_rolls_back_rows_and_position(container):
    app = container.app
    user_id, _ = app.register_user("crash@example.com", "correct horse battery", "C", "r")
    owner = Principal.user(user_id)
    org = app.create_organisation(owner, "Crash", "r").id
    for i in range(5):
        app.create_prompt(owner, org, name=f"p{i}", template="t", request_id="r")

    faulty = FaultyCatalogue(container.engine)
    with pytest.raises(Boom):
        catch_up_once(faulty, container.supervisor.source, batch_size=1000)
    with container.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(prompts)).scalar() == 0
        assert tracking.read(conn, "catalogue").position == 0

    healthy = container.projections["catalogue"]
    assert catch_up(healthy, container.supervisor.source) == container.supervisor.source.head()
    with container.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(prompts)).scalar() == 5
