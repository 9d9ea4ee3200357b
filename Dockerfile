# One image for every streambill process; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY . /app
# Editable install: paths such as the catalog and schemas resolve inside /app.
RUN pip install --no-cache-dir -e .
ENTRYPOINT ["streambill"]
