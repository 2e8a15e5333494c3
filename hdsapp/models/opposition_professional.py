import uuid

from sqlmodel import Field, SQLModel


class OppositionProfessional(SQLModel, table=True):
    """A professional named by an opposition of scope "professionals"."""

    __tablename__ = "opposition_professional"

    opposition_id: uuid.UUID = Field(foreign_key="opposition.id", primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", primary_key=True, index=True)
