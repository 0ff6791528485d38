"""vigil_archive: indexes stored segments, holds evidence, serves playback and exports."""
