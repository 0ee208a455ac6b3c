# The poise services (ingest, worker, console) in one image, installed from the wheel built
# in the first stage: the image holds the installed package, not the source tree.
#   docker build -t poise .        (docker-compose.yml builds it for you)
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
RUN pip install --no-cache-dir --disable-pip-version-check build==1.2.2.post1
# the build context is the repository less what .dockerignore leaves out (secrets, caches)
COPY . .
RUN python -m build --wheel --outdir /dist

FROM python:3.11.11-slim-bookworm
# no .pyc writes at run time, logs straight to the container's output
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# the libraries WeasyPrint renders the console's PDF reports with, and the reports' font
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /dist /dist
RUN pip install --no-cache-dir --disable-pip-version-check \
      "$(ls /dist/poise-*.whl)[all]" \
 && rm -rf /dist \
 && useradd --system --uid 10001 --home-dir /var/lib/poise --create-home poise \
 && install -d -o poise -g poise /var/lib/poise/worker /var/lib/poise/console
# (the folders exist in the image so that a new named volume mounted there belongs to poise)
USER poise
WORKDIR /var/lib/poise
ENTRYPOINT ["poise"]
CMD ["--help"]
