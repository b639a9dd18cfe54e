# gitops-canary: a slim image with git and an ssh client, running as a non-root user.
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --uid 10001 --create-home --home-dir /home/gitops-canary gitops-canary

WORKDIR /src
COPY pyproject.toml README.md ./
COPY gitops_canary ./gitops_canary
RUN pip install --no-cache-dir . && rm -rf /src

USER 10001:10001
WORKDIR /home/gitops-canary
ENV GITOPS_CANARY_LOG_FORMAT=json \
    GITOPS_CANARY_WORKDIR=/var/lib/gitops-canary \
    PYTHONUNBUFFERED=1

EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"

ENTRYPOINT ["gitops-canary"]
CMD ["run", "--config", "/etc/gitops-canary/config.yaml"]
