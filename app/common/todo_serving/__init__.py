"""What both Todo chatbot apps (todo_api, todo_web) serve with: the same code, once."""
