"""A minimal JSON-lines formatter, as a log pipeline would configure one (the docs show
python-json-logger): the message, the level, every ``extra`` field django_jobs sets, and
the traceback."""

import json
import logging

#: The attributes every LogRecord has: what is not among them came from ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {key: value for key, value in vars(record).items() if key not in _STANDARD}
        data.update(
            logger=record.name,
            level=record.levelname,
            message=record.getMessage(),
            exc_info=self.formatException(record.exc_info) if record.exc_info else None,
        )
        return json.dumps(data, default=str)
