# Backend image: the todo_api FastAPI service.
# Build context: app/ (see app/.dockerignore): `docker build -f docker/backend.Dockerfile app`.
# It copies backend/ and common/ (todo_serving, shared with the other app). Classic builder
# compatible (no BuildKit-only syntax). Base image from the PYTHON_IMAGE build
# argument (settings: PYTHON_BASE_IMAGE); it needs only python3 with venv.
ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: the dependencies into a venv (no app code: an edit never reruns it)
FROM ${PYTHON_IMAGE} AS builder
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
# strip(1), for the wheels' native libraries: several ship their debug symbols
# (cryptography's 14 MB library, asyncpg's 8 MB, SQLAlchemy's), which the runtime never
# reads. Only in this stage; a base without apt-get, or no Debian mirror in reach, keeps
# them (a larger image, said in the build's output). The version is the base's Debian
# release's own (no pin across releases).
# hadolint ignore=DL3008
RUN if command -v apt-get >/dev/null; then \
      { apt-get update && apt-get install -y --no-install-recommends binutils; } \
        || echo "binutils could not be installed: the native libraries stay unstripped"; \
      rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY backend/requirements.txt ./
# Then drop the installers and strip the native libraries. Bytecode is compiled
# ahead for what importing each installed package loads, and for the submodules the
# app's start loads beyond those (the arguments: the runtime user cannot write
# bytecode, so each pod start would compile them again, ~0.4 s of its 1 CPU);
# a full compileall would add ~50 MB. tests/integration/test_image_bytecode.py
# fails when a module loaded at start has no bytecode in the image.
RUN /opt/venv/bin/pip install --no-cache-dir --no-compile -r requirements.txt \
 && /opt/venv/bin/python -m pip uninstall --yes pip setuptools wheel \
 && find /opt/venv -depth -type d -name __pycache__ -exec rm -rf {} + \
 && if command -v strip >/dev/null; then find /opt/venv -name '*.so*' -type f -exec strip --strip-unneeded {} +; fi \
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
      sqlalchemy.orm \
      sqlalchemy.ext.asyncio \
      sqlalchemy.dialects.sqlite \
      sqlalchemy.future \
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
    PORT=8000
COPY --from=builder /opt/venv /opt/venv
# The metadata before the code: the classic builder commits a layer per
# instruction, so after an edit only the COPY, the compile and USER run again.
WORKDIR /tmp
EXPOSE 8000
# Liveness from inside the image with python only (no curl in the base).
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/opt/venv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=2)"]
CMD ["/opt/venv/bin/python", "-m", "todo_api"]
COPY common/todo_serving /opt/app/todo_serving
COPY backend/todo_api /opt/app/todo_api
RUN ["/opt/venv/bin/python", "-m", "compileall", "-q", "/opt/app"]
USER 10001:10001
