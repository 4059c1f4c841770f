# Frontend image: the todo_web server-rendered UI (proxies /api to BACKEND_URL).
# Build context: app/ (see app/.dockerignore): `docker build -f docker/frontend.Dockerfile app`.
# It copies frontend/ and common/ (todo_serving, shared with the other app). Classic builder
# compatible (no BuildKit-only syntax). Base image from the PYTHON_IMAGE build
# argument (settings: PYTHON_BASE_IMAGE); it needs only python3 with venv.
ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: the dependencies into a venv (no app code: an edit never reruns it)
FROM ${PYTHON_IMAGE} AS builder
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY frontend/requirements.txt ./
# Then drop the installers. Bytecode is compiled ahead for what importing each
# installed package loads, and for the submodules the app's start loads beyond
# those (the arguments: the runtime user cannot write bytecode, so each pod start
# would compile them again); a full compileall would add ~50 MB.
# tests/integration/test_image_bytecode.py fails when a module loaded at start has
# no bytecode in the image.
RUN /opt/venv/bin/pip install --no-cache-dir --no-compile -r requirements.txt \
 && /opt/venv/bin/python -m pip uninstall --yes pip setuptools wheel \
 && find /opt/venv -depth -type d -name __pycache__ -exec rm -rf {} + \
 && printf '%s\n' \
      'import importlib, importlib.metadata as md, sys' \
      'tops = [n for n in md.packages_distributions() if not n.startswith("_")]' \
      'for name in sorted(set(tops) - {"pip", "setuptools", "pkg_resources"}) + sys.argv[1:]:' \
      '    try:' \
      '        importlib.import_module(name)' \
      '    except Exception as exc:  # an optional extra is missing: compiled on use' \
      '        print("not precompiled:", name, type(exc).__name__)' \
      > /tmp/precompile.py \
 && /opt/venv/bin/python /tmp/precompile.py \
      fastapi.staticfiles \
      fastapi.templating \
      pydantic.v1 \
      uvicorn.lifespan.on \
      uvicorn.protocols.http.httptools_impl

# --- runtime: the venv, then the app's own code in the last, small layers -------
FROM ${PYTHON_IMAGE}
# Which base the image's size is measured against (the build argument's value).
ARG PYTHON_IMAGE
LABEL org.opencontainers.image.base.name=${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=3000
COPY --from=builder /opt/venv /opt/venv
# The metadata before the code: the classic builder commits a layer per
# instruction, so after an edit only the COPY, the compile and USER run again.
WORKDIR /tmp
EXPOSE 3000
# Liveness from inside the image with python only (no curl in the base).
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/opt/venv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=2)"]
CMD ["/opt/venv/bin/python", "-m", "todo_web"]
COPY common/todo_serving /opt/app/todo_serving
COPY frontend/todo_web /opt/app/todo_web
RUN ["/opt/venv/bin/python", "-m", "compileall", "-q", "/opt/app"]
USER 10001:10001
