class UserError(Exception):
    """Bad input from the user (checkpoint, arguments, files): the CLI prints it as one clear line, exit 2."""
