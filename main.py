"""Entry point: `python main.py` serves the app; `python main.py create-admin --email ...` adds an admin."""

from secondopinion.cli import main

if __name__ in {'__main__', '__mp_main__'}:
    main()
