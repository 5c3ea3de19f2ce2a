"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Frozen once released: fixes go forward in a new revision. Never import the
ORM models here; declare the step as data (see outbound_schema.steps).
"""

from outbound_schema import steps
from outbound_schema.steps import Step
${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}

STEP = Step(revision=${repr(up_revision)})


def upgrade() -> None:
    steps.upgrade(STEP)


def downgrade() -> None:
    steps.downgrade(STEP)
