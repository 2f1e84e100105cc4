"""Operations: backups and restores of a deployment's state, the start-up database check, and the run lock that
tells whether a main job owns a ``user_data`` directory."""
