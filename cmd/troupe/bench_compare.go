package main

import "io"

func benchCompare(args []string, stdout, stderr io.Writer) int { return exitUsage }
