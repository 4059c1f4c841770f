"""todo_web: the Todo chatbot's server-rendered web frontend.

The browser only ever talks to this service; it forwards API calls to the
backend server-side (``BACKEND_URL``, read at run time) with the user's token,
which lives in a signed HttpOnly session cookie and never reaches JavaScript.
"""

__version__ = "0.1.0"
