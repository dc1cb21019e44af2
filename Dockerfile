# One slim, non-root image for the operator, sync jobs, gateway and agent entrypoints.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY agent ./agent
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[operator,postgres]'

FROM python:3.11-slim
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin ferry
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels 'ferry[operator,postgres]' \
    && rm -rf /wheels
USER 10001
ENTRYPOINT ["ferry"]
