"""What several test modules share: launching runs, finding leaks, writing data files in official formats."""
