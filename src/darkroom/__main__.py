from darkroom.cli import app

app()
