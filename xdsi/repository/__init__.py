"""The index (SQLAlchemy) and the blob store; functions take a Session, never open one."""
