#!/bin/sh
echo "greetings from compose"
