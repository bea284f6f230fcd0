# One image for the three services; compose picks the command (web or worker) per container.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml ./
COPY services ./services
COPY infra/__init__.py infra/stack.py infra/smtp_sink.py ./infra/
RUN pip install --no-cache-dir .
ENV PYTHONUNBUFFERED=1
EXPOSE 8000
