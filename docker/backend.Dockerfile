# Backend image: the todo_api FastAPI service.
# Build context: app/backend (see app/backend/.dockerignore). Classic builder
# compatible (no BuildKit-only syntax). Base image from the PYTHON_IMAGE build
# argument (settings: PYTHON_BASE_IMAGE); it needs only python3 with venv.
ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: dependencies into a venv, then the app itself -------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
WORKDIR /src
# Dependencies first: this layer is reused until requirements.txt changes.
COPY requirements.txt ./
RUN /opt/venv/bin/pip install --no-cache-dir --no-compile -r requirements.txt
COPY . .
# The app without dependencies; then drop the installers. Bytecode is compiled
# ahead only for the modules the app imports (the runtime user cannot write it,
# and start-up is faster): a full compileall would add ~50 MB to the backend.
RUN /opt/venv/bin/pip install --no-cache-dir --no-compile --no-deps . \
 && /opt/venv/bin/python -m pip uninstall --yes pip setuptools wheel \
 && find /opt/venv -depth -type d -name __pycache__ -exec rm -rf {} + \
 && printf '%s\n' \
      'import importlib, pkgutil, todo_api as pkg' \
      'for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):' \
      '    try:' \
      '        importlib.import_module(mod.name)' \
      '    except Exception as exc:  # needs run-time settings: compiled on use' \
      '        print("not precompiled:", mod.name, type(exc).__name__)' \
      > /tmp/precompile.py \
 && /opt/venv/bin/python /tmp/precompile.py

# --- runtime: only the venv ----------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8000
COPY --from=builder /opt/venv /opt/venv
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000
# Liveness from inside the image with python only (no curl in the base).
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/opt/venv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=2)"]
CMD ["/opt/venv/bin/python", "-m", "todo_api"]
