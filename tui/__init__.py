"""The Textual trace inspector (installed as presrm.tui)."""
